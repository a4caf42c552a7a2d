"""docs/configuration.md is generated from the options and must stay in step."""

from tools import gen_config_doc


def test_configuration_reference_is_up_to_date():
    assert gen_config_doc.TARGET.read_text() == gen_config_doc.render(), (
        "docs/configuration.md is stale: run `make genconfig` and commit the result")


def test_every_group_has_a_section():
    text = gen_config_doc.render()
    for group in ("DEFAULT", "alertmanager", "webhook", "mapping", "datasources",
                  "aetos_client", "prometheus_client", "service_credentials", "publisher"):
        assert f"## [{group}]" in text
