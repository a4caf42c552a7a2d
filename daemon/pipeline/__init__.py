"""The pipeline: mapping file, transformer and the event it builds.

``load_mapping`` compiles the YAML mapping once; ``Transformer.transform``
turns a lifecycle transition into an ``AlarmEvent``, awaiting only the
``Resolver`` protocol.
"""

from daemon.pipeline.event import SCHEMA_VERSION, AlarmEvent, load_schema
from daemon.pipeline.mapping import CompiledMapping, Match, Rule, load_mapping, parse_mapping
from daemon.pipeline.resolution import Resolution, Resolver, ResolveRequest
from daemon.pipeline.transformer import Transformer

__all__ = [
    "SCHEMA_VERSION",
    "AlarmEvent",
    "CompiledMapping",
    "Match",
    "Resolution",
    "ResolveRequest",
    "Resolver",
    "Rule",
    "Transformer",
    "load_mapping",
    "load_schema",
    "parse_mapping",
]
