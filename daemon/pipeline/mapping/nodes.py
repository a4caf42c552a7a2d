"""Reading composed YAML nodes with errors that name the file, the line and the rule.

PyYAML's composed nodes (``yaml.compose``) keep their position, which
constructed Python objects lose.  :class:`NodeReader` reads them as the
mapping file needs: mappings with unique string keys and merge keys
(``<<: *anchor``) expanded, typed scalars, and a budget of nodes against alias
bombs.  Every problem is a :class:`~daemon.exception.MappingError` whose
``where`` is ``file:line`` and whose text starts with ``rule N:`` while a rule
is being read.
"""

from __future__ import annotations

from typing import Final

import yaml
from yaml.constructor import SafeConstructor

from daemon.exception import MappingError

__all__ = ["MAX_NODES", "NodeReader"]

#: Most YAML nodes visited while loading (guards against alias bombs).
MAX_NODES: Final = 200_000
_MAX_MERGE_DEPTH: Final = 32

_YAML_TYPE_NAMES: Final = {
    "tag:yaml.org,2002:str": "a string",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a timestamp",
    "tag:yaml.org,2002:binary": "binary data",
}


class NodeReader:
    """Reads composed YAML nodes of one file, counting them against :data:`MAX_NODES`.

    :param source: the file name used in error messages
    :ivar rule: the 1-based number of the rule being read, or None; errors name it
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.constructor = SafeConstructor()
        self.visited = 0
        self.rule: int | None = None

    # -- errors

    def error(self, node: yaml.Node | None, problem: str) -> MappingError:
        """The error to raise for ``problem`` at ``node`` (its line), in the current rule."""
        where = self.source
        if node is not None:
            where = f"{where}:{node.start_mark.line + 1}"
        if self.rule is not None:
            problem = f"rule {self.rule}: {problem}"
        return MappingError(where=where, problem=problem)

    @staticmethod
    def describe(node: yaml.Node) -> str:
        """What ``node`` is, for messages: ``a mapping``, ``a list``, ``an integer``..."""
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return _YAML_TYPE_NAMES.get(node.tag, f"a value tagged {node.tag}")

    def unknown(self, key: str, key_node: yaml.Node, what: str, allowed: tuple[str, ...]) -> None:
        """Refuse ``key`` in ``what``, naming the keys allowed there.

        :raises MappingError: always
        """
        raise self.error(key_node, (
            f"unknown key {key!r} in {what} (allowed: {', '.join(allowed)})"))

    # -- nodes

    def count(self) -> None:
        """Count one node visited.

        :raises MappingError: past :data:`MAX_NODES`
        """
        self.visited += 1
        if self.visited > MAX_NODES:
            raise MappingError(where=self.source, problem=(
                f"more than {MAX_NODES} YAML nodes (alias expansion?)"))


    def mapping(self, node: yaml.Node, what: str,
                depth: int = 0) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """A mapping node's items as (key, key_node, value_node), keys checked.

        YAML merge keys (``<<: *anchor``) are expanded here, not by PyYAML, so
        every merged node is counted against :data:`MAX_NODES`.

        :raises MappingError: not a mapping, a key that is not a string, a
            duplicate key, or merge keys nested too deeply
        """
        self.count()
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping, got {self.describe(node)}")
        if depth > _MAX_MERGE_DEPTH:
            raise self.error(node, f"merge keys (<<) in {what} nested too deeply")
        own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                subs = (value_node.value if isinstance(value_node, yaml.SequenceNode)
                        else [value_node])
                for sub in subs:
                    if not isinstance(sub, yaml.MappingNode):
                        raise self.error(sub, (
                            f"a merge key (<<) in {what} takes a mapping or a list of "
                            f"mappings, got {self.describe(sub)}"))
                    for key, sub_key, sub_value in self.mapping(sub, what, depth + 1):
                        merged.setdefault(key, (sub_key, sub_value))
                continue
            key = self.string(key_node, f"a key of {what}")
            if key in own:
                raise self.error(key_node, (
                    f"duplicate key {key!r} in {what} "
                    f"(first on line {own[key][0].start_mark.line + 1})"))
            own[key] = (key_node, value_node)
        merged.update(own)
        return [(key, k, v) for key, (k, v) in merged.items()]

    def string(self, node: yaml.Node, what: str) -> str:
        """A string scalar's value; anything else is an error with a hint to quote it.

        :raises MappingError: ``node`` is not a string
        """
        self.count()
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            hint = ""
            if isinstance(node, yaml.ScalarNode) and node.tag in (
                    "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
                    "tag:yaml.org,2002:timestamp"):
                hint = f" (quote it: '{node.value}')" if node.value else ""
            raise self.error(node, f"{what} must be a string, got {self.describe(node)}{hint}")
        value = self.constructor.construct_scalar(node)
        assert isinstance(value, str)
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        """A boolean scalar's value.

        :raises MappingError: ``node`` is not ``true`` or ``false``
        """
        self.count()
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            raise self.error(node, f"{what} must be true or false, got {self.describe(node)}")
        return bool(self.constructor.construct_yaml_bool(node))
