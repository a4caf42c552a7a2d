"""Helpers of the mapping tests: compile a mapping from indented text, or get its error."""

from __future__ import annotations

import textwrap

import pytest

from daemon.exception import MappingError
from daemon.pipeline.mapping import CompiledMapping, parse_mapping


def parse(text: str) -> CompiledMapping:
    """The mapping of ``text`` (dedented), named ``mappings.yaml``."""
    return parse_mapping(textwrap.dedent(text), source="mappings.yaml")


def error_of(text: str | bytes) -> str:
    """The message of the ``MappingError`` compiling ``text`` (dedented) raises."""
    if isinstance(text, str):
        text = textwrap.dedent(text)
    with pytest.raises(MappingError) as info:
        parse_mapping(text, source="mappings.yaml")
    return str(info.value)
