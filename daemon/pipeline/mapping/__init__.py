"""The mapping file: which resource an alert is about (docs/mapping.md).

``load_mapping(path)`` (or ``parse_mapping(text)``) validates a YAML mapping
file and compiles it once into a :class:`CompiledMapping`, raising
``MappingError`` naming the file, the line and the rule.
``CompiledMapping.match(labels)`` is the one lookup: the first rule in file
order whose ``key`` holds, with the resource properties it gives, as a
:class:`Match`.  Matching is pure: no I/O.

The parts, one job each:

- ``compiler.py``: text and files in, rules out; ``compile_conditions`` for
  other files written in the ``key`` language (the Watcher bridge's rules);
- ``nodes.py``: reading composed YAML nodes with errors naming file and line;
- ``rules.py``: the rule model (``Condition``, ``PropertySpec``, ``Rule``, ``Match``);
- ``index.py``: ``CompiledMapping``, the rules indexed by alertname, and ``match``;
- ``transforms.py``: the value transforms a property may name.
"""

from daemon.pipeline.mapping.compiler import (
    MAX_FILE_SIZE,
    compile_conditions,
    load_mapping,
    parse_mapping,
)
from daemon.pipeline.mapping.index import CompiledMapping
from daemon.pipeline.mapping.rules import OPERATORS, Condition, Match, Rule
from daemon.pipeline.mapping.transforms import TRANSFORMS

__all__ = [
    "MAX_FILE_SIZE",
    "OPERATORS",
    "TRANSFORMS",
    "CompiledMapping",
    "Condition",
    "Match",
    "Rule",
    "compile_conditions",
    "load_mapping",
    "parse_mapping",
]
