"""`hub_smtp add --kind direct`: a direct server from the shell (no host or login), and the
refusals of what each kind lacks."""

from __future__ import annotations

from hub.models import SmtpServer

from .test_commands import refused, run_json


def test_add_a_direct_server(db):
    result = run_json("hub_smtp", "add", "--name", "直发", "--kind", "direct", "--from-email", "news@sender.test",
                      "--helo-name", "mta1.sender.test", "--source-address", "192.0.2.10")
    server = SmtpServer.objects.get(pk=result["id"])
    assert (server.kind, server.host, server.helo_name, server.source_address) == (
        "direct", "", "mta1.sender.test", "192.0.2.10")
    listed = run_json("hub_smtp", "list")
    assert listed["kind"] == "direct"


def test_a_direct_server_needs_a_sender_and_a_relay_a_host(db):
    # (The commands speak the hub's default language, Chinese.)
    assert str(refused("hub_smtp", "add", "--name", "d", "--kind", "direct")).startswith("from_email: ")
    assert str(refused("hub_smtp", "add", "--name", "r", "--from-email", "a@example.com")).startswith("host: ")
    assert "source_address" in str(refused("hub_smtp", "add", "--name", "d", "--kind", "direct",
                                           "--from-email", "a@example.com", "--source-address", "not-an-ip"))
