"""[alertmanager] clusters: named cluster groups and their defaults."""

from __future__ import annotations

import pathlib

import pytest
from oslo_config import cfg

from daemon import conf as relay_conf
from daemon import exception
from daemon.conf import alertmanager

MAPPING = pathlib.Path(__file__).resolve().parents[3] / "etc" / "alarm-relay" / "mappings.yaml"


def _conf(tmp_path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "alarm-relay.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    conf(["--config-file", str(path)], project="alarm-relay", default_config_files=[])
    return conf


def _validation_error(tmp_path, alertmanager_sections: str) -> str:
    """The ConfigError validate() raises for a config with these Alertmanager sections."""
    conf = _conf(tmp_path, f"""
[DEFAULT]
state_dir = {tmp_path / "state"}
[mapping]
path = {MAPPING}
{alertmanager_sections}
""")
    relay_conf.set_defaults(conf)
    with pytest.raises(exception.ConfigError) as err:
        relay_conf.validate(conf)
    return str(err.value)


def test_one_cluster_by_default(tmp_path):
    conf = _conf(tmp_path, "[alertmanager]\nurls = http://a:9093\ncluster_name = prod\n")
    (cluster,) = alertmanager.clusters(conf)
    assert (cluster.name, cluster.group, cluster.options.urls) == (
        "prod", "alertmanager", ["http://a:9093"])


def test_named_clusters_take_their_own_values_and_inherit_the_rest(tmp_path):
    conf = _conf(tmp_path, """
[alertmanager]
clusters = east, west
poll_interval = 3
username = relay
password = s3cret
[alertmanager:east]
urls = http://e1:9093,http://e2:9093
[alertmanager:west]
urls = http://w:9093
poll_interval = 7
""")
    east, west = alertmanager.clusters(conf)
    assert (east.name, east.group) == ("east", "alertmanager:east")
    assert east.options.urls == ["http://e1:9093", "http://e2:9093"]
    assert (east.options.poll_interval, west.options.poll_interval) == (3.0, 7.0)
    assert west.options.username == "relay" and west.options.password == "s3cret"
    assert west.options.timeout == 10.0
    # A second call returns the same groups (registration happens once).
    assert [c.group for c in alertmanager.clusters(conf)] == [east.group, west.group]


def test_a_named_cluster_has_no_default_urls(tmp_path):
    conf = _conf(tmp_path, "[alertmanager]\nclusters = east\nurls = http://a:9093\n")
    (east,) = alertmanager.clusters(conf)
    assert east.options.urls is None


@pytest.mark.parametrize(("names", "problem"), [
    ("east, east", "'east' is listed twice"),
    ("east, we st", "'we st' is not a cluster name"),
    ("-east", "'-east' is not a cluster name"),
])
def test_bad_cluster_names(tmp_path, names, problem):
    conf = _conf(tmp_path, f"[alertmanager]\nclusters = {names}\n")
    with pytest.raises(exception.ConfigError) as err:
        alertmanager.clusters(conf)
    assert str(err.value).startswith("[alertmanager] clusters: ")
    assert problem in str(err.value)


def test_unlisted_cluster_sections_are_reported(tmp_path):
    conf = _conf(tmp_path, """
[alertmanager]
clusters = east
[alertmanager:east]
urls = http://e:9093
[alertmanager:old]
urls = http://o:9093
""")
    assert alertmanager.unlisted_cluster_groups(conf) == ["alertmanager:old"]


def test_validate_refuses_an_alertmanager_in_two_clusters(tmp_path):
    message = _validation_error(tmp_path, """
[alertmanager]
clusters = east, west
[alertmanager:east]
urls = http://u:pw@am:9093
[alertmanager:west]
urls = http://other:9093,http://u:pw@am:9093/
""")
    assert message == ("[alertmanager:west] urls: URL number 2 is also a replica of "
                       "[alertmanager:east]; an Alertmanager belongs to one cluster")


def test_named_clusters_follow_a_reloaded_base_value(tmp_path):
    conf = _conf(tmp_path, """
[alertmanager]
clusters = east
poll_interval = 3
[alertmanager:east]
urls = http://e:9093
""")
    (east,) = alertmanager.clusters(conf)
    assert east.options.poll_interval == 3.0
    (tmp_path / "alarm-relay.conf").write_text("""
[alertmanager]
clusters = east
poll_interval = 9
[alertmanager:east]
urls = http://e:9093
""")
    conf.mutate_config_files()  # what the master does on SIGHUP
    (east,) = alertmanager.clusters(conf)
    assert east.options.poll_interval == 9.0


@pytest.mark.parametrize(("url", "problem"), [
    ("http://relay:s3cret@am:99999", "'http://am:99999' has an invalid port"),
    ("am.example.org:9093", "'am.example.org:9093' is not an http(s) URL with a host"),
])
def test_a_bad_url_is_named_without_its_password(tmp_path, url, problem):
    message = _validation_error(tmp_path, f"[alertmanager]\nurls = {url}\n")
    assert message == f"[alertmanager] urls: {problem}"
    assert "s3cret" not in message
