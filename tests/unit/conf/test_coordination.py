"""[coordination]: defaults keep one relay as before; the URL is a secret."""

from __future__ import annotations

import pathlib

import pytest
from oslo_config import cfg

from daemon import conf as relay_conf
from daemon import exception
from daemon.conf import coordination


def _conf(tmp_path, text: str = "") -> cfg.ConfigOpts:
    path = tmp_path / "alarm-relay.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    conf(["--config-file", str(path)], project="alarm-relay", default_config_files=[])
    return conf


def test_defaults_are_a_single_relay_within_the_takeover_bound(tmp_path):
    group = _conf(tmp_path).coordination
    assert group.backend_url == ""
    assert group.partitions == 1
    # The documented bound: lease + check_interval + one poll (1 s) <= 15 s.
    assert group.lease + group.check_interval + 1.0 <= 15.0


def test_backend_url_is_secret_and_every_option_has_help():
    by_name = {opt.name: opt for opt in coordination.COORDINATION_OPTS}
    assert by_name["backend_url"].secret
    assert all(opt.help for opt in coordination.COORDINATION_OPTS)


def test_values_are_read(tmp_path):
    group = _conf(tmp_path, "[coordination]\nbackend_url = redis://h:6379\npartitions = 3\n"
                            "lease = 5\ncheck_interval = 0.5\n").coordination
    assert (group.backend_url, group.partitions, group.lease, group.check_interval) == (
        "redis://h:6379", 3, 5.0, 0.5)


def test_coordination_needs_a_shared_database(tmp_path):
    mapping = pathlib.Path(__file__).resolve().parents[3] / "etc" / "alarm-relay" / "mappings.yaml"
    conf = _conf(tmp_path, f"[DEFAULT]\nstate_dir = {tmp_path / 'state'}\n"
                           f"[mapping]\npath = {mapping}\n"
                           "[coordination]\nbackend_url = redis://:s3cret@h:6379\n")
    relay_conf.set_defaults(conf)
    with pytest.raises(exception.ConfigError) as err:
        relay_conf.validate(conf)
    assert "[coordination] backend_url: several relays need a shared [database]" in str(err.value)
    assert "s3cret" not in str(err.value)
