"""Severity: the ``severity`` label's value, normalised through a configurable map."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["DEFAULT_SEVERITY_MAP", "SEVERITIES", "SeverityMap"]

#: The normalised severities, most severe first; anything else is ``unknown``.
SEVERITIES: Final = ("critical", "major", "minor", "warning", "info", "unknown")

#: Same as the default of ``[mapping] severity_map``.
DEFAULT_SEVERITY_MAP: Final[Mapping[str, str]] = {
    "critical": "critical", "error": "major", "major": "major", "high": "major",
    "minor": "minor", "medium": "minor", "warning": "warning", "warn": "warning",
    "low": "warning", "info": "info", "informational": "info", "none": "info",
}

_CACHE_LIMIT: Final = 1024


class SeverityMap:
    """Normalises raw severity values (case and surrounding blanks ignored).

    :param mapping: raw value -> one of :data:`SEVERITIES` (except ``unknown``)
    :raises ValueError: a target is not a known severity
    """

    __slots__ = ("_cache", "_map")

    def __init__(self, mapping: Mapping[str, str] = DEFAULT_SEVERITY_MAP) -> None:
        normalised: dict[str, str] = {}
        for raw, target in mapping.items():
            target = str(target).strip().lower()
            if target not in SEVERITIES:
                raise ValueError(
                    f"severity_map: {raw!r} maps to {target!r}, which is not one of "
                    f"{', '.join(SEVERITIES)}")
            normalised[str(raw).strip().lower()] = target
        self._map = normalised
        self._cache: dict[str, str] = {}

    def normalise(self, raw: str | None) -> str:
        """The normalised severity of a raw label value.

        :param raw: the label's value, or None when the alert has none
        """
        if raw is None:
            return "unknown"
        cached = self._cache.get(raw)
        if cached is not None:
            return cached
        result = self._map.get(raw.strip().lower(), "unknown")
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[raw] = result
        return result
