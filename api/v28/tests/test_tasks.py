"""V28 6.1-6.4 and 2.1 (task.php), called as the reference's samples do: GET query strings
with URL-encoded times (`2012-07-31%2012:00`, 9.7's `2017-11-24+10%3A38%3A40`), POST forms.
XML parsed and checked; refusals write nothing; another account's tasks are not_exist."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.utils import timezone

from hub.campaigns.models import AddTaskCounter, Campaign, State
from hub.contacts import services as contacts
from hub.mailtemplates import services as templates
from hub.mailtemplates.check import run_check
from hub.models import AppServer

from .helpers import envelope, parse

URL = "/mm-ms/apinew/task.php?do="
HTML = '<p>你好 {{fullname|朋友}}</p>' + "<p>本月新品上架，欢迎选购。</p>" * 30 + '<a href="{{unsubscribe_url}}">退订</a>'


@pytest.fixture
def setup(tenant_a, make_server):
    server = make_server(from_email="linbihuan@comingchina.com")
    AppServer.objects.create(app=tenant_a.app, server=server, priority=0)
    lists = [contacts.create_list(tenant_a.account, name) for name in ("客户", "会员")]
    contacts.add_contact(tenant_a.account, lists[0].pk, "a@x.example")
    tpls = [templates.create_template(tenant_a.account, name=n, subjects="主题", html=HTML) for n in ("T1", "T2")]
    for t in tpls:
        run_check(t.pk, t.revision)
    return tenant_a, lists, tpls


def call(client, tenant, query: str, data: dict | None = None):
    if data is None:
        return client.get(URL + query, **tenant.headers)
    return client.post(URL + query, data, **tenant.headers)


def test_add_task_as_the_62_sample(client, setup):
    tenant, lists, tpls = setup
    query = (f"add-task&tpl_id={tpls[0].pk}&send_domain=comingchina.com&send_account=linbihuan@comingchina.com"
             f"&send_fullname=linbihuan&maillist_id={lists[0].pk}&time=2012-07-31%2012:00")
    response = call(client, tenant, query)
    assert response.status_code == 200, response.content
    root = parse(response)
    assert [c.tag for c in root] == ["status", "id", "data"]
    assert root.findtext("status") == "success" and b"<![CDATA[" in response.content
    assert root.findtext("data") == "添加群发任务成功! "  # the sample's message (Chinese by default)
    c = Campaign.objects.get(pk=int(root.findtext("id")))
    assert c.account == tenant.account and c.template_ids == [tpls[0].pk] and c.list_ids == [lists[0].pk]
    assert timezone.localtime(c.send_time).replace(tzinfo=None) == datetime(2012, 7, 31, 12, 0)
    assert c.send_fullname == "linbihuan" and c.state == State.SENDING  # the time has passed: it starts


def test_add_task_as_the_php_97_sample(client, setup):
    tenant, lists, tpls = setup
    query = (f"add-task&tpl_id={tpls[0].pk},{tpls[1].pk}&send_domain=all&send_account=all&send_fullname=negoo"
             f"&status=2&track_status=1&track_domain=followemail.51negoo.com&maillist_id={lists[0].pk},{lists[1].pk}"
             f"&time=2017-11-24+10%3A38%3A40")
    _status, data = envelope_id(call(client, tenant, query))
    c = Campaign.objects.get(pk=int(data))
    assert (c.track_status, c.track_domain, c.state) == (1, "followemail.51negoo.com", State.SENDING)
    assert timezone.localtime(c.send_time).replace(tzinfo=None) == datetime(2017, 11, 24, 10, 38, 40)
    assert c.template_ids == [tpls[0].pk, tpls[1].pk]


def envelope_id(response) -> tuple[str, str]:
    root = parse(response)
    assert root.findtext("status") == "success", response.content
    return root.findtext("status"), root.findtext("id")


def test_post_form_with_every_parameter_then_list_edit_delete(client, setup):
    tenant, lists, tpls = setup
    form = {"tpl_id": f"{tpls[0].pk}", "send_account": "linbihuan@comingchina.com", "send_fullname": "林",
            "maillist_id": f"{lists[0].pk}, {lists[1].pk}", "send_qty": "100", "send_qty_start": "10",
            "status": "-1", "time": "2030-01-02 03:04", "subs_link": "0", "track_status": "2",
            "send_replyto": "repaly@126.com", "hour_speed": "75000", "is_need_receipt": "0", "is_delay": "1"}
    _status, task_id = envelope_id(call(client, tenant, "add-task", form))
    c = Campaign.objects.get(pk=int(task_id))
    assert (c.send_qty_start, c.send_qty, c.state, c.subs_link, c.hour_speed, c.is_delay, c.send_replyto) == (
        10, 100, State.ON_HOLD, False, 75000, True, "repaly@126.com")
    assert c.send_qty_remark == 1

    root = parse(call(client, tenant, "task-list"))
    assert root.tag == "task_list" and len(root) == 1
    task = root[0]
    assert [e.tag for e in task] == [
        "id", "sn", "acct_type", "acct_address", "sender", "replyto", "sender_name", "templates", "addr_type",
        "listes", "send_qty", "send_qty_remak", "send_time", "time_start", "time_end", "send_count", "error_count",
        "send_status", "verify_status", "track_status"]
    assert task.findtext("acct_type") == "address" and task.findtext("send_status") == "-1"
    assert [(i.findtext("list_id"), i.findtext("list_name")) for i in task.find("listes")] == [
        (str(lists[0].pk), "客户"), (str(lists[1].pk), "会员")]
    assert task.find("templates")[0].findtext("tpl_name") == "T1"
    assert task.findtext("send_time") == "2030-01-02 03:04:00"
    assert len(parse(call(client, tenant, "task-list&date=2030-01-02"))) == 1  # the hub's zone's day
    assert len(parse(call(client, tenant, "task-list&date=2030-01-01"))) == 0

    # 6.3's sample, with `time` (its own example) and then `send_time` in the lenient form.
    response = call(client, tenant, f"edit-task&id={c.pk}&send_domain=comingchina.com&send_account=all"
                                    f"&send_fullname=linbihuan&maillist_id={lists[0].pk}&time=2031-07-31%2012:00")
    assert envelope(response)[0] == "success"
    c.refresh_from_db()
    assert (c.send_domain, c.send_account, c.list_ids) == ("comingchina.com", "all", [lists[0].pk])
    call(client, tenant, f"edit-task&id={c.pk}&send_time=2017-7-4", {})
    c.refresh_from_db()
    assert timezone.localtime(c.send_time).replace(tzinfo=None) == datetime(2017, 7, 4)
    root = parse(call(client, tenant, "task-list&send_status=-1&page=1&limit=50"))
    assert len(root) == 1 and root[0].findtext("acct_type") == "domain" and root[0].findtext("acct_domain")

    assert envelope(call(client, tenant, f"del-task&id={c.pk}"))[0] == "success"
    assert not Campaign.objects.exists()


def test_list_task_21(client, setup):
    tenant, lists, tpls = setup
    form = {"tpl_id": f"{tpls[0].pk},{tpls[1].pk}", "maillist_id": f"{lists[0].pk},{lists[1].pk}",
            "status": "-1", "time": "2012-03-02 08:00"}
    _status, task_id = envelope_id(call(client, tenant, "add-task", form))
    root = parse(call(client, tenant, "list-task&date=2012-03-02"))
    (task,) = list(root)
    assert [e.tag for e in task] == [
        "id", "sn", "sender", "sender_name", "replyto", "tpl_id", "tpl_name", "addr_type", "list_id", "list_name",
        "send_qty", "send_qty_remak", "send_time", "send_satus", "time_start", "time_end", "send_count",
        "error_count", "track_status"]
    assert task.findtext("tpl_id") == f"{tpls[0].pk},{tpls[1].pk}" and task.findtext("tpl_name") == "T1,T2"
    assert task.findtext("send_satus") == "-1"
    sn = task.findtext("sn")
    assert len(parse(call(client, tenant, f"list-task&ident={sn}"))) == 1
    assert len(parse(call(client, tenant, "list-task&date_end=2012-03-01"))) == 0
    assert len(parse(call(client, tenant, "list-task&date=2012-03-01&date_end=2012-03-03&state=-1"))) == 1
    assert len(parse(call(client, tenant, f"list-task&id={task_id}&state=2"))) == 0
    response = call(client, tenant, "list-task")
    assert response.status_code == 400 and envelope(response)[0] == "param_error"


@pytest.mark.parametrize(("query", "ident", "http"), [
    ("add-task&tpl_id=abc&maillist_id={l}", "param_error", 400),
    ("add-task&maillist_id={l}", "param_error", 400),
    ("add-task&tpl_id={t}", "param_error", 400),
    ("add-task&tpl_id={t}&maillist_id={l}&hour_speed=50", "invalid_speed", 400),
    ("add-task&tpl_id={t}&maillist_id={l}&status=3", "invalid_status", 400),
    ("add-task&tpl_id={t}&maillist_id={l}&status=9", "invalid_status", 400),
    ("add-task&tpl_id={t}&maillist_id={l}&time=2012-13-40", "param_error", 400),
    ("add-task&tpl_id={t}&maillist_id={l}&send_qty_start=0", "invalid_range", 400),
    ("add-task&tpl_id={t}&maillist_id={l}&send_account=who@else.example", "invalid_sender", 400),
    ("add-task&tpl_id={t}&maillist_id={l}&is_need_receipt=1", "receipt_unavailable", 400),
    ("add-task&tpl_id={t}&maillist_id={l}&is_delay=2", "param_error", 400),
    ("add-task&tpl_id=999999&maillist_id={l}", "invalid_template", 400),
])
def test_bad_parameters_write_nothing(client, setup, query, ident, http):
    tenant, lists, tpls = setup
    response = call(client, tenant, query.format(t=tpls[0].pk, l=lists[0].pk))
    assert (response.status_code, envelope(response)[0]) == (http, ident)
    assert not Campaign.objects.exists() and not AddTaskCounter.objects.exists()


def test_another_accounts_task_is_not_exist_everywhere(client, setup, tenant_b):
    tenant, lists, tpls = setup
    _s, task_id = envelope_id(call(client, tenant, f"add-task&tpl_id={tpls[0].pk}&maillist_id={lists[0].pk}&status=-1"))
    for query in (f"edit-task&id={task_id}&send_fullname=x", f"edit-task&id={task_id}&send_status=2",
                  f"del-task&id={task_id}"):
        response = call(client, tenant_b, query)
        assert (response.status_code, envelope(response)[0]) == (404, "not_exist")
    assert len(parse(call(client, tenant_b, f"task-list&id={task_id}"))) == 0
    assert len(parse(call(client, tenant_b, f"list-task&id={task_id}"))) == 0
    # B cannot use A's template or list either (B's own of each, to isolate the check).
    their_list = contacts.create_list(tenant_b.account, "B")
    their_tpl = templates.create_template(tenant_b.account, name="B", subjects="s", html=HTML)
    response = call(client, tenant_b, f"add-task&tpl_id={tpls[0].pk}&maillist_id={their_list.pk}")
    assert (response.status_code, envelope(response)[0]) == (400, "invalid_template")
    response = call(client, tenant_b, f"add-task&tpl_id={their_tpl.pk}&maillist_id={lists[0].pk}")
    assert (response.status_code, envelope(response)[0]) == (400, "invalid_list")
    c = Campaign.objects.get()
    assert (c.send_fullname, c.state) == ("", State.ON_HOLD)


def test_illegal_state_change_over_the_api(client, setup):
    tenant, lists, tpls = setup
    _s, task_id = envelope_id(call(client, tenant, f"add-task&tpl_id={tpls[0].pk}&maillist_id={lists[0].pk}&status=-3"))
    response = call(client, tenant, f"edit-task&id={task_id}&send_status=2")
    assert (response.status_code, envelope(response)[0]) == (400, "illegal_state")
    assert Campaign.objects.get().state == State.CANCELLED


def test_add_task_rate_limit(client, setup):
    tenant, lists, tpls = setup
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    AddTaskCounter.objects.create(account=tenant.account, hour=hour, count=100)
    response = call(client, tenant, f"add-task&tpl_id={tpls[0].pk}&maillist_id={lists[0].pk}")
    assert (response.status_code, envelope(response)[0]) == (429, "too_many_requests")
    assert not Campaign.objects.exists() and AddTaskCounter.objects.get().count == 100
