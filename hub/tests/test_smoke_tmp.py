import pytest
from hub.delivery import deliver_batch
from hub.models import SendLog

@pytest.mark.parametrize("mode", ["plain", "starttls", "ssl"])
def test_modes(smtp_sink_factory, make_server, make_app, client, run_queue, mode):
    sink = smtp_sink_factory(mode, username="u", password="p")
    server = make_server(sink, security={"plain": "none"}.get(mode, mode), verify_tls=False)
    p = make_app(server)
    r = client.post("/api.php", {"action": "send", **p.creds, "to": "a@example.com", "subject": "s", "message": "<b>x</b>"})
    assert r.json()["code"] == 0, r.json()
    assert run_queue() == 1
    row = SendLog.objects.get()
    assert row.status == "sent", row.error
    assert len(sink.messages) == 1
    assert p.app.id == 1000
