"""The examples of docs/mapping.md, docs/events.md and the sample mappings.yaml are valid."""

from __future__ import annotations

import json
import re

import pytest

from daemon.pipeline.mapping import load_mapping, parse_mapping
from tests.unit.pipeline.conftest import REPO, schema_errors

SAMPLE = REPO / "etc" / "alarm-relay" / "mappings.yaml"


def blocks(document: str, language: str) -> list[str]:
    text = (REPO / "docs" / document).read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_sample_mapping_is_the_seed_and_valid():
    mapping = load_mapping(SAMPLE)
    assert len(mapping) == 4
    labels = {"alertname": "HighCpuOnVmAlert", "job": "libvirt", "domain": "d", "instance": "i"}
    _, properties, _ = mapping.match(labels)
    assert properties == {"instance_name": "d", "host_id": "i"}


def test_sample_mapping_commented_extensions_are_valid():
    lines = SAMPLE.read_text().split("# Extensions", 1)[1].splitlines()
    rules = [line[2:] for line in lines if line.startswith("# ") and line[2:3] in ("-", " ")]
    mapping = parse_mapping("alerts:\n" + "\n".join(rules) + "\n", source="extensions")
    assert [rule.ref for rule in mapping] == [
        "rule 1", "node-filesystem", "data-volume-inodes", "vm-cpu", "any-host"]


@pytest.mark.parametrize("block", [b for b in blocks("mapping.md", "yaml")
                                   if b.startswith("alerts:")])
def test_mapping_doc_files_are_valid(block):
    assert len(parse_mapping(block, source="docs/mapping.md")) >= 1


@pytest.mark.parametrize("block", [b for b in blocks("mapping.md", "yaml")
                                   if b.startswith("- ")])
def test_mapping_doc_rules_are_valid(block):
    assert len(parse_mapping("alerts:\n" + block, source="docs/mapping.md")) >= 1


def test_events_doc_example_validates():
    (example,) = blocks("events.md", "json")
    assert schema_errors(json.loads(example)) == []
