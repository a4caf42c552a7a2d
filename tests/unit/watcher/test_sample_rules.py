"""The shipped sample rules file loads and means what its comments say."""

from pathlib import Path

from daemon.watcher.rules import load_rules

SAMPLE = Path(__file__).resolve().parents[3] / "etc" / "alarm-relay" / "watcher-rules.yaml"


def test_sample_rules_load_and_match():
    maintenance, balance = load_rules(SAMPLE)
    event = {"alarm_id": "a", "name": "NodeDiskFailing", "severity": "critical",
             "labels": {"alertname": "NodeDiskFailing", "instance": "10.0.0.7:9100"},
             "resource": {"type": "host", "id": "compute-7.example.org"}}
    assert maintenance.matches(event) and not balance.matches(event)
    assert maintenance.render_parameters(event) == {"maintenance_node": "compute-7.example.org"}
    assert (maintenance.cooldown, balance.cooldown) == (3600.0, 900.0)
    assert balance.render_parameters(event) == {"metrics": "instance_cpu_usage",
                                                "threshold": 80.0, "period": 300}
