"""V28 2.2-2.6: every bad parameter refused with the API's own `<result>` envelope and nothing
changed; another account's task (id, statistics task id, batch number) is `not_exist`;
another account's customer_id is `not_exist`; and each endpoint through a real HTTP server
with `curl -u`, as the reference's samples call it."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest

from api.conftest import StatsWorld as World
from hub.stats.tests.world import snapshot

from .helpers import envelope

ROOT = "/mm-ms/apinew/"

BAD = [
    ("statistic.php", "param_error"), ("statistic.php?date=2012-3-2", "param_error"),
    ("statistic.php?date=2012-02-30", "param_error"), ("statistic.php?date=20120302", "param_error"),
    ("statistic.php?date=2012-03-02&do=x", "unknown_action"),
    ("failexport.php?date=2012-03-02", "param_error"),  # type required
    ("failexport.php?date=2012-03-02&type=11", "param_error"), ("failexport.php?date=2012-03-02&type=0", "param_error"),
    ("failexport.php?date=2012-03-02&type=spam", "param_error"), ("failexport.php?type=all", "param_error"),
    ("failexport.php?date=2012-03-02&type=all&out_type=pdf", "param_error"),
    ("failexport.php?date=2012-03-02&type=all&is_repeat=2", "param_error"),
    ("failexport.php?date=2012/03/02&type=all", "param_error"),
    ("failexport.php?date_end=2012-13-01&type=all", "param_error"),
    ("failexport.php?task_id=abc&type=all", "param_error"), ("failexport.php?task_id=-1&type=all", "param_error"),
    ("failexport.php?task_id=999999&type=all", "not_exist"),
    ("failexport.php?task_ident=nope&type=all", "not_exist"),
    ("failexportall.php?type=1", "param_error"), ("failexportall.php?date=2012-03-02&type=x", "param_error"),
    ("failexportall.php?date=2012-03-02&type=all&out_type=XLS", "param_error"),
    ("failexportall.php?task_id=999999&type=all", "not_exist"),
    ("stask.php", "param_error"), ("stask.php?date=2012-3-02", "param_error"),
    ("stask.php?date=2010-01-01&date_end=2012-03-02", "param_error"),  # over 366 days
    ("stask.php?id=0", "param_error"), ("stask.php?id=999999", "not_exist"), ("stask.php?ident=nope", "not_exist"),
    ("deduction.php", "param_error"), ("deduction.php?date=yesterday", "param_error"),
    ("maillog.php", "param_error"), ("maillog.php?date=0001-01-01", "param_error"),
    ("statistic.php?date=9999-12-31", "param_error"), ("maillog.php?date=2012-03-02&mail_to=not-an-address", "param_error"),
    ("maillog.php?date=2012-03-02&mail_to=a%40b.c%0D%0ABcc%3A%20x%40y.z", "param_error"),
    ("maillog.php?date=2012-03-02&limit=501", "param_error"), ("maillog.php?date=2012-03-02&page=0", "param_error"),
    ("maillog.php?date=2012-03-02&limit=x", "param_error"),
    ("statistic.php?date=" + "9" * 300, "param_error"),  # over the parameter length cap
]


@pytest.mark.parametrize(("query", "ident"), BAD)
def test_bad_parameters_are_refused_and_change_nothing(client, world: World, query, ident):
    before = snapshot()
    response = client.get(ROOT + query, **world.a.headers)
    assert response.status_code in (400, 404)
    status, message = envelope(response)
    assert status == ident and message
    assert snapshot() == before


def cross_account_queries(w: World) -> list[str]:
    c = w.campaign  # A's task, asked for by B
    return [f"failexport.php?task_id={c.pk}&type=all", f"failexport.php?task_ident={c.sn}&type=all",
            f"failexport.php?ident={c.sn}&type=all&out_type=xml", f"failexportall.php?task_id={c.pk}&type=all",
            f"failexportall.php?task_ident={c.sn}&type=-1&out_type=json", f"stask.php?id={c.pk}",
            f"stask.php?ident={c.sn}", f"stask.php?date=2012-03-02&ident={c.sn}",
            f"stask.php?id={w.other_campaign.pk}&ident={c.sn}"]


def test_another_accounts_task_is_not_found_and_its_data_never_shown(client, world: World):
    before = snapshot()
    for query in cross_account_queries(world):
        response = client.get(ROOT + query, **world.b.headers)
        assert response.status_code == 404, query
        assert envelope(response)[0] == "not_exist", query
    assert snapshot() == before
    # By date B sees its own failures only (never A's addresses).
    lines = b"".join(client.get(ROOT + "failexport.php?date=2012-03-02&date_end=2012-03-02&type=all",
                                **world.b.headers).streaming_content).decode().split()
    assert lines == ["b1@y.example"]
    tasks = ET.fromstring(client.get(ROOT + "stask.php?date=2012-03-02", **world.b.headers).content)
    assert {t.findtext("task_id") for t in tasks} == {"0", str(world.other_campaign.pk)}


@pytest.mark.parametrize("script", ["statistic.php?date=2012-03-02", "failexport.php?date=2012-03-02&type=all",
                                    "failexportall.php?date=2012-03-02&type=all", "stask.php?date=2012-03-02",
                                    "deduction.php?date=2012-03-02", "maillog.php?date=2012-03-02"])
def test_customer_id_of_another_account_is_not_found(client, world: World, script):
    response = client.get(f"{ROOT}{script}&customer_id={world.a.account.pk}&user_type=manager", **world.b.headers)
    assert response.status_code in (403, 404)
    assert envelope(response)[0] in ("not_exist", "forbidden")
    response = client.get(ROOT + script)  # no credentials
    assert response.status_code == 401 and envelope(response)[0] == "auth_error"


def curl(url: str, user: str, password: str) -> bytes:
    return subprocess.run(["curl", "-s", "--max-time", "20", "-u", f"{user}:{password}", url], check=True,
                          capture_output=True, timeout=30).stdout


@pytest.mark.django_db(transaction=True)
def test_each_endpoint_with_curl_as_the_samples(live_server, world: World):
    a = world.a
    base = f"{live_server.url}/mm-ms/apinew/"
    stat = ET.fromstring(curl(base + "statistic.php?date=2012-03-02", *a.auth))
    assert stat.findtext("actual_send") == "4"
    text = curl(base + "failexport.php?date=2012%2D03%2D02&date_end=2012%2D03%2D02&type=all", *a.auth).decode()
    assert text.split() == ["conn@x.example", "dup@x.example", "f1@x.example", "f2@x.example", "t3@x.example"]
    data = json.loads(curl(base + f"failexportall.php?task_ident={world.campaign.sn}&type=1&out_type=json", *a.auth))
    assert data == [{"email": "f1@x.example", "type": "1", "task_id": str(world.campaign.pk)}]
    task = ET.fromstring(curl(base + f"stask.php?date=2012-03-02&ident={world.campaign.sn}", *a.auth)).find("task")
    assert task.findtext("rebate") == "3"
    ded = ET.fromstring(curl(base + "deduction.php?date=2012-03-02", *a.auth))
    assert ded.find("list").findtext("total") == "5"
    log = json.loads(curl(base + "maillog.php?date=2012-03-02&mail_to=conn%40x.example", *a.auth))
    assert [item["to"] for item in log["lists"]] == ["conn@x.example"]
    assert curl(base + "statistic.php?date=2012-03-02", a.username, "wrong").find(b"auth_error") > 0


def test_refusals_speak_chinese_by_default_and_english_when_asked(client, world: World):
    query = ROOT + "failexport.php?date=2012-03-02&type=all&out_type=pdf"
    assert envelope(client.get(query, **world.a.headers))[1] == "out_type 必须是 file、json 或 xml（不传则为文本）"
    english = client.get(query, HTTP_ACCEPT_LANGUAGE="en", **world.a.headers)
    assert envelope(english)[1] == "out_type must be file, json or xml (or absent for text)"
