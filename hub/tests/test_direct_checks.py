"""System checks of direct delivery's settings (hub.checks)."""

from __future__ import annotations

from hub import checks


def ids(found) -> list[str]:
    return [m.id for m in found]


def test_a_bad_source_address_or_ca_file_is_an_error(settings, tmp_path):
    settings.HUB_DIRECT_SOURCE_ADDRESS, settings.HUB_DIRECT_TLS_CA_FILE = "", ""
    assert checks.check_direct_delivery(None) == []
    settings.HUB_DIRECT_SOURCE_ADDRESS = "192.0.2.300"
    settings.HUB_DIRECT_TLS_CA_FILE = str(tmp_path / "missing.pem")
    assert ids(checks.check_direct_delivery(None)) == ["hub.E005", "hub.E006"]
    settings.HUB_DIRECT_SOURCE_ADDRESS = "2001:db8::25"
    (tmp_path / "ca.pem").write_text("x")
    settings.HUB_DIRECT_TLS_CA_FILE = str(tmp_path / "ca.pem")
    assert checks.check_direct_delivery(None) == []


def test_a_placeholder_helo_name_is_a_deploy_warning(settings):
    settings.HUB_DIRECT_HELO_NAME = "smtphub.localdomain"
    assert ids(checks.check_direct_helo(None)) == ["hub.W005"]
    settings.HUB_DIRECT_HELO_NAME = "mta1.example.com"
    assert checks.check_direct_helo(None) == []
