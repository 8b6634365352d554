"""V28 2.2-2.6 called as the reference's samples do (GET query strings, Basic auth, the
sample dates `2012-03-02`, URL-encoded), answers parsed: XML with a real parser, JSON with
json, text and CSV line by line; the figures are the world's (conftest_stats)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from api.conftest import StatsWorld as World

from .helpers import content, fields, parse

ROOT = "/mm-ms/apinew/"


def get(client, tenant, query: str):
    return client.get(ROOT + query, **tenant.headers)


def test_statistic_22_for_the_sample_date(client, world: World):
    response = get(client, world.a, "statistic.php?date=2012-03-02")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    root = parse(response)
    assert root.tag == "statistic"
    assert fields(root) == [
        ("date", "2012-03-02"), ("ws_qty", "5"), ("ws_error", "3"), ("ws_count", "2"), ("invalid_addr", "1"),
        ("format_error", "0"), ("send_count", "10"), ("deduc_count", "10"), ("actual_send", "4"),
        ("send_error", "6"), ("actual_deduc", "5"), ("blacklist_count", "0"), ("refuse_count", "0"),
        ("email_not_exist", "2"), ("jujue_count", "0")]
    # Another day, and another account's day: their own figures only.
    assert dict(fields(parse(get(client, world.a, "statistic.php?date=2012%2D03%2D03"))))["send_error"] == "1"
    b = dict(fields(parse(get(client, world.b, "statistic.php?date=2012-03-02"))))
    assert (b["send_count"], b["actual_send"], b["send_error"], b["ws_qty"]) == ("2", "1", "1", "1")


def text_lines(response) -> list[str]:
    return content(response).decode("utf-8").splitlines()


def test_failexport_231_text_json_csv_xml(client, world: World):
    base = "failexport.php?date=2012-03-02&date_end=2012-03-02&type="
    # Default: text, one address per line, each once (sorted).
    response = get(client, world.a, base + "all")
    assert response["Content-Type"].startswith("text/plain")
    deduped = text_lines(response)
    assert deduped == ["conn@x.example", "dup@x.example", "f1@x.example", "f2@x.example", "t3@x.example"]
    assert sorted(text_lines(get(client, world.a, base + "-1&is_repeat=1"))) == [
        "conn@x.example", "dup@x.example", "dup@x.example", "f1@x.example", "f2@x.example", "t3@x.example"]
    assert text_lines(get(client, world.a, base + "-1&is_repeat=0")) == deduped
    assert json.loads(content(get(client, world.a, base + "user_reject&out_type=json"))) == ["dup@x.example"]
    assert json.loads(content(get(client, world.a, base + "3&out_type=json&is_repeat=1"))) == ["dup@x.example"] * 2
    file = get(client, world.a, base + "not_exist&out_type=file")
    assert file["Content-Type"].startswith("text/csv") and "attachment" in file["Content-Disposition"]
    assert list(csv.reader(io.StringIO(content(file).decode()))) == [["email"], ["f1@x.example"], ["t3@x.example"]]
    root = parse(get(client, world.a, base + "all&out_type=xml"))
    assert root.tag == "fail_recipient_list"
    recipients = [fields(r) for r in root.findall("recipient")]
    assert recipients[0] == [("email", "conn@x.example"), ("error_type", "10"), ("error_type_dec", "连接异常")]
    assert [("f1@x.example", "1", "邮箱不存在"), ("f2@x.example", "8", "无效地址")] == [
        tuple(v for _k, v in r) for r in recipients if r[0][1] in ("f1@x.example", "f2@x.example")]


@pytest.mark.parametrize(("value", "expected"), [
    ("1", ["f1@x.example", "t3@x.example"]), ("not_exist", ["f1@x.example", "t3@x.example"]),
    ("2", []), ("over_quota", []), ("3", ["dup@x.example"]), ("user_reject", ["dup@x.example"]),
    ("4", []), ("5", []), ("6", []), ("7", []), ("8", ["f2@x.example"]), ("invalid_addr", ["f2@x.example"]),
    ("9", []), ("format_error", []), ("10", ["conn@x.example"]),
    ("all", ["conn@x.example", "dup@x.example", "f1@x.example", "f2@x.example", "t3@x.example"]),
    ("-1", ["conn@x.example", "dup@x.example", "f1@x.example", "f2@x.example", "t3@x.example"])])
def test_failexport_every_type_by_number_and_name(client, world: World, value, expected):
    assert text_lines(get(client, world.a, f"failexport.php?date=2012-03-02&date_end=2012-03-02&type={value}")) == expected


def test_failexport_by_date_range_task_id_and_ident(client, world: World):
    c = world.campaign
    both_days = text_lines(get(client, world.a, "failexport.php?date=2012-03-02&date_end=2012-03-03&type=all"))
    # One bound alone: the other is today ((e) #4), so from 2012-03-02 until now.
    assert text_lines(get(client, world.a, "failexport.php?date=2012-03-02&type=all")) == both_days
    assert "later@x.example" in both_days and len(both_days) == 6
    # The bounds in either order, URL-encoded.
    assert text_lines(get(client, world.a, "failexport.php?date=2012%2D03%2D03&date_end=2012%2D03%2D02&type=all")) \
        == both_days
    by_task = ["dup@x.example", "f1@x.example", "f2@x.example"]
    assert text_lines(get(client, world.a, f"failexport.php?task_id={c.pk}&type=all")) == by_task
    assert text_lines(get(client, world.a, f"failexport.php?task_ident={c.sn}&type=all")) == by_task
    assert text_lines(get(client, world.a, f"failexport.php?ident={c.sn}&type=-1")) == by_task
    assert text_lines(get(client, world.a, f"failexport.php?task_id={c.pk}&date=2012-03-02&date_end=2012-03-02&type=1")) == ["f1@x.example"]
    # date_end alone: from today back to it ((e) #4), which includes both days.
    assert len(text_lines(get(client, world.a, "failexport.php?date_end=2012-03-02&type=all"))) == 6


def test_failexportall_232_shapes(client, world: World):
    c = world.campaign
    base = "failexportall.php?date=2012-03-02&date_end=2012-03-02&type="
    assert text_lines(get(client, world.a, base + "3")) == ["dup@x.example", "dup@x.example"]  # two tasks
    data = json.loads(content(get(client, world.a, base + "3&out_type=json")))
    assert data == [{"email": "dup@x.example", "type": "3", "task_id": "0"},
                    {"email": "dup@x.example", "type": "3", "task_id": str(c.pk)}]
    root = parse(get(client, world.a, base + "1&out_type=xml"))
    assert root.tag == "fail_recipient_list"
    assert [fields(r) for r in root] == [
        [("email", "f1@x.example"), ("type", "1"), ("task_id", str(c.pk))],
        [("email", "t3@x.example"), ("type", "1"), ("task_id", "0")]]
    rows = list(csv.reader(io.StringIO(content(get(client, world.a, base + "all&out_type=file")).decode())))
    assert rows[0] == ["email", "type", "task_id"] and ["f2@x.example", "8", str(c.pk)] in rows and len(rows) == 7
    by_ident = json.loads(content(get(client, world.a, f"failexportall.php?task_ident={c.sn}&type=all&out_type=json")))
    assert {d["task_id"] for d in by_ident} == {str(c.pk)} and len(by_ident) == 3
    assert len(text_lines(get(client, world.a, base + "all&is_repeat=1"))) == 6


STASK = ["task_id", "task_date", "task_ident", "totalsum", "total", "invalid", "failed", "send_failed", "success",
         "email_not_exist", "spam_content", "connect_error", "actual", "over_quota", "user_reject", "rubbish", "point",
         "rebate"]


def test_stask_24_by_date_ident_and_id(client, world: World):
    c = world.campaign
    root = parse(get(client, world.a, f"stask.php?date=2012-03-02&ident={c.sn}"))  # the reference's sample shape
    assert root.tag == "data"
    (task,) = root.findall("task")
    assert [k for k, _v in fields(task)] == STASK
    assert dict(fields(task)) == {
        "task_id": str(c.pk), "task_date": "2012-03-02", "task_ident": c.sn, "totalsum": "8", "total": "5",
        "invalid": "3", "failed": "3", "send_failed": "3", "success": "2", "email_not_exist": "1",
        "spam_content": "0", "connect_error": "0", "actual": "5", "over_quota": "0", "user_reject": "1",
        "rubbish": "0", "point": "2", "rebate": "3"}
    assert dict(fields(parse(get(client, world.a, f"stask.php?id={c.pk}")).find("task"))) == dict(fields(task))
    day = parse(get(client, world.a, "stask.php?date=2012-03-02"))
    rows = [dict(fields(t)) for t in day.findall("task")]
    assert [(r["task_id"], r["task_ident"]) for r in rows] == [("0", ""), (str(c.pk), c.sn)]
    assert (rows[0]["total"], rows[0]["success"], rows[0]["failed"], rows[0]["actual"], rows[0]["rebate"]) == (
        "5", "2", "3", "5", "2")
    # Both days: one entry per task and day; a single bound is that day alone.
    two = [dict(fields(t)) for t in parse(get(client, world.a, "stask.php?date=2012-03-02&date_end=2012-03-03"))]
    assert [(r["task_date"], r["task_id"]) for r in two] == [("2012-03-02", "0"), ("2012-03-02", str(c.pk)),
                                                             ("2012-03-03", "0")]
    only_end = [dict(fields(t)) for t in parse(get(client, world.a, "stask.php?date_end=2012-03-03"))]
    assert [(r["task_date"], r["over_quota"]) for r in only_end] == [("2012-03-03", "1")]
    assert list(parse(get(client, world.a, f"stask.php?id={c.pk}&date=2012-03-03"))) == []


def test_deduction_25(client, world: World, make_tenant):
    root = parse(get(client, world.a, "deduction.php?date=2012-03-02"))
    assert root.tag == "data"
    assert [fields(x) for x in root.findall("list")] == [[
        ("date", "2012-03-02"), ("company", "Alice 有限公司"), ("deduction", "all"), ("send_num", "10"), ("total", "5")]]
    assert b"<company><![CDATA[Alice" in content(get(client, world.a, "deduction.php?date=2012-03-02"))


def test_deduction_25_of_a_manager_lists_its_sub_accounts(client, world: World, make_tenant):
    manager = make_tenant("boss", company="总公司", is_manager=True)
    world.a.account.parent = manager.account
    world.a.account.save()
    rows = [dict(fields(x)) for x in parse(get(client, manager, "deduction.php?date=2012-03-02"))]
    assert [(r["company"], r["send_num"], r["total"]) for r in rows] == [("总公司", "0", "0"),
                                                                         ("Alice 有限公司", "10", "5")]
    # Acting for the sub-account: its line only.
    one = parse(get(client, manager, f"deduction.php?date=2012-03-02&customer_id={world.a.account.pk}"))
    assert [dict(fields(x))["company"] for x in one] == ["Alice 有限公司"]


def test_maillog_26_json(client, world: World):
    response = get(client, world.a, "maillog.php?date=2012-03-02")
    assert response["Content-Type"].startswith("application/json")
    data = json.loads(response.content)
    assert len(data["lists"]) == 9 and data["more"] is False and data["page"] == 1
    first = data["lists"][0]
    assert set(first) == {"id", "time", "send_time", "from", "to", "cc", "subject", "status", "smtp_code", "result",
                          "error_type", "task_id", "attempts", "message_id", "source"}
    assert (first["to"], first["subject"], first["status"], first["task_id"], first["time"]) == (
        "s1@x.example", "A", "sent", world.campaign.pk, "2012-03-02 10:00:00")
    dup = json.loads(get(client, world.a, "maillog.php?date=2012-03-02&mail_to=DUP%40x.example").content)["lists"]
    assert [(d["status"], d["error_type"], d["task_id"]) for d in dup] == [("failed", 3, world.campaign.pk),
                                                                         ("failed", 3, 0)]
    assert json.loads(get(client, world.a, "maillog.php?date=2011-01-01").content) == {
        "lists": [], "page": 1, "limit": 100, "more": False}
    page = json.loads(get(client, world.a, "maillog.php?date=2012-03-02&limit=4&page=2").content)
    assert len(page["lists"]) == 4 and page["more"] is True
    # B sees its own two messages only.
    assert len(json.loads(get(client, world.b, "maillog.php?date=2012-03-02").content)["lists"]) == 2
