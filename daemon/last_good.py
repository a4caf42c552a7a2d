"""The mapping in force: the configured file, or the last one that loaded.

A SIGHUP with a broken mapping file must not stop the relay: the worker keeps
a copy of every file that loaded in ``state_dir`` and falls back to it.
"""

from __future__ import annotations

import os
import pathlib

from oslo_config import cfg
from oslo_log import log

from daemon import exception
from daemon.pipeline import mapping as mapping_loader

__all__ = ["LAST_GOOD_MAPPING", "load_mapping_or_last_good"]

LOG = log.getLogger(__name__)

LAST_GOOD_MAPPING = "mapping.last-good.yaml"


def load_mapping_or_last_good(conf: cfg.ConfigOpts) -> mapping_loader.CompiledMapping:
    """Load ``[mapping] path``; on failure fall back to the last mapping that loaded.

    The master validated the file before the first worker started, so a
    failure here means it changed since: a SIGHUP with a broken file.  The
    previous mapping stays in force and the error is logged.

    :raises MappingError: when the file is invalid and no previous mapping exists
    """
    last_good = pathlib.Path(conf.state_dir) / LAST_GOOD_MAPPING
    path = pathlib.Path(conf.mapping.path)
    try:
        compiled = mapping_loader.load_mapping(str(path))
    except exception.MappingError as err:
        if not last_good.exists():
            raise
        LOG.error("Mapping reload rejected, keeping the previous mapping: %s", err)
        compiled = mapping_loader.load_mapping(str(last_good))
        LOG.info("Mapping in force: previous version of %s with %d rules", path, len(compiled))
        return compiled
    # Keep a copy of what loaded, written atomically, for the next reload.
    tmp = last_good.with_suffix(".tmp")
    tmp.write_bytes(path.read_bytes())
    os.replace(tmp, last_good)
    LOG.info("Mapping loaded from %s with %d rules", path, len(compiled))
    return compiled
