"""The option surface: every option documented, the sample in step with the code."""

import pathlib
import subprocess
import sys

from oslo_config import cfg

from daemon import conf as relay_conf
from daemon.conf import opts

ROOT = pathlib.Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "etc" / "alarm-relay" / "alarm-relay.conf.sample"
GENERATOR_CONF = ROOT / "etc" / "alarm-relay" / "alarm-relay-config-generator.conf"


def test_every_group_module_is_listed():
    groups = {group.name if group else "DEFAULT" for group, _ in opts.list_opts()}
    assert groups == {"DEFAULT", "alertmanager", "lifecycle", "webhook", "mapping",
                      "datasources", "aetos_client", "service_credentials",
                      "prometheus_client", "publisher", "database", "coordination",
                      "watcher_bridge",
                      "watcher_client"}


def test_every_option_has_help():
    for group, group_opts in opts.list_opts():
        for opt in group_opts:
            assert opt.help, f"[{group}] {opt.name} has no help text"


def test_design_names_exist():
    conf = relay_conf.prepare([])
    assert conf.state_dir == "/var/lib/alarm-relay"
    assert conf.webhook.host == "127.0.0.1"
    assert conf.alertmanager.urls and conf.alertmanager.poll_interval > 0
    assert conf.mapping.path
    assert conf.datasources.metrics == []
    aetos = conf.aetos_client
    assert (aetos.interface, aetos.fqdn_label, aetos.instance_uuid_label) == (
        "public", "fqdn", "resource")
    assert aetos.region_name is None
    assert conf.prometheus_client.host and conf.prometheus_client.port
    assert conf.oslo_messaging_notifications.driver == ["messagingv2"]
    assert conf.oslo_messaging_notifications.topics == ["alarms"]
    # Registered by the rabbit driver when the transport is built.
    from oslo_messaging._drivers import amqp
    assert {opt.name: opt.default for opt in amqp.amqp_opts}["amqp_durable_queues"] is True


def test_secrets_are_secret():
    for group, group_opts in opts.list_opts():
        for opt in group_opts:
            if opt.dest in ("password", "token") or opt.dest.endswith("_password"):
                assert opt.secret, f"[{group}] {opt.name} must be secret=True"


def test_sample_config_is_up_to_date(tmp_path):
    generated = tmp_path / "sample.conf"
    subprocess.run(
        [sys.executable, "-m", "oslo_config.generator", "--config-file", str(GENERATOR_CONF),
         "--output-file", str(generated)],
        check=True, cwd=ROOT)
    assert generated.read_text() == SAMPLE.read_text(), (
        "etc/alarm-relay/alarm-relay.conf.sample is stale: run `tox -e genconfig` "
        "(or `make genconfig`) and commit the result")


def test_sample_parses_with_defaults(tmp_path):
    conf = relay_conf.prepare(["--config-file", str(SAMPLE)])
    assert isinstance(conf, cfg.ConfigOpts)
    assert conf.publisher.max_outbox_events > 0
