"""Reading composed YAML nodes: merge keys, typed scalars, the node budget, where errors are."""

from __future__ import annotations

import pytest
import yaml

from daemon.exception import MappingError
from daemon.pipeline.mapping.nodes import NodeReader
from tests.unit.pipeline.mapping.conftest import error_of


def test_merge_key_bomb_hits_the_node_limit():
    lines = ["a0: &m0 {x: y}"]
    for i in range(1, 31):
        lines.append(f"a{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}")
    # Unknown top-level keys are reported before anything is expanded.
    assert "unknown key 'a0' in the file" in error_of("\n".join(lines) + "\nalerts: []\n")
    items = [f"    - &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}" for i in range(1, 31)]
    text = ("alerts:\n- key: {alertname: A}\n  resource:\n    <<:\n"
            "    - &m0 {x: y}\n" + "\n".join(items) + "\n")
    message = error_of(text)
    assert "YAML nodes (alias expansion?)" in message


def test_merge_keys_are_expanded_and_own_keys_win():
    root = yaml.compose("base: &b {a: '1', b: '2'}\nitem: {<<: *b, b: '3', c: '4'}\n")
    reader = NodeReader("f.yaml")
    [_, (key, _, item)] = reader.mapping(root, "the file")
    assert key == "item"
    assert [(k, reader.string(v, k)) for k, _, v in reader.mapping(item, "'item'")] == [
        ("a", "1"), ("b", "3"), ("c", "4")]


def test_errors_name_file_line_and_rule():
    root = yaml.compose("a: '1'\nb: 2\nc: [x]\n")
    reader = NodeReader("f.yaml")
    items = reader.mapping(root, "the file")
    reader.rule = 4
    with pytest.raises(MappingError) as info:
        reader.string(items[1][2], "b")
    assert str(info.value) == "f.yaml:2: rule 4: b must be a string, got an integer (quote it: '2')"
    with pytest.raises(MappingError) as info:
        reader.boolean(items[2][2], "c")
    assert str(info.value) == "f.yaml:3: rule 4: c must be true or false, got a list"
    reader.rule = None
    assert str(reader.error(None, "problem")) == "f.yaml: problem"


def test_duplicate_keys_and_bad_merges_are_refused():
    reader = NodeReader("f.yaml")
    with pytest.raises(MappingError) as info:
        reader.mapping(yaml.compose("a: '1'\na: '2'\n"), "x")
    assert str(info.value) == "f.yaml:2: duplicate key 'a' in x (first on line 1)"
    with pytest.raises(MappingError, match="a merge key .* takes a mapping or a list of mappings"):
        reader.mapping(yaml.compose("a: &s '1'\nb: {<<: *s}\n").value[1][1], "b")


def test_the_budget_counts_every_node(monkeypatch):
    monkeypatch.setattr("daemon.pipeline.mapping.nodes.MAX_NODES", 3)
    reader = NodeReader("f.yaml")
    root = yaml.compose("a: '1'\nb: '2'\n")
    with pytest.raises(MappingError, match="more than 3 YAML nodes"):
        for _, _, value in reader.mapping(root, "the file"):
            reader.string(value, "value")
