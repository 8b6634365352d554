"""`hub_account add|list|topup` and `hub_app add --account`: JSON out, refusals that exit
non-zero with a clear message and write nothing."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from hub.models import Account, App, QuotaChange

from .test_commands import add_server, json_lines, run, run_json


def test_add_list_and_top_up_an_account(db):
    made = run_json("hub_account", "add", "--name", "acme", "--company", "Acme 有限公司", "--quota-type", "all",
                    "--quota", "100", "--service-start", "2026-01-01", "--service-end", "2027-12-31")
    a = Account.objects.get(pk=made["id"])
    assert (a.name, a.company, a.quota_type, a.quota_total, a.quota_available) == ("acme", "Acme 有限公司", "all",
                                                                                   100, 100)
    assert made["service_end"] == "2027-12-31"
    rows = json_lines(run("hub_account", "list"))
    assert [r["name"] for r in rows] == ["acme"]
    topped = run_json("hub_account", "topup", "acme", "50", "--note", "order 7")
    assert (topped["quota_total"], topped["quota_available"]) == (150, 150)
    change = QuotaChange.objects.get()
    assert (change.delta, change.note, change.user, change.quota_available_after) == (50, "order 7", None, 150)
    assert run_json("hub_account", "topup", str(a.pk), "1")["quota_available"] == 151


def test_sub_account_of_a_manager(db):
    boss = run_json("hub_account", "add", "--name", "boss", "--manager")
    child = run_json("hub_account", "add", "--name", "child", "--parent", "boss")
    assert child["parent"] == boss["id"]


@pytest.mark.parametrize("args,message", [
    (["topup", "nobody", "5"], "no account"),
    (["topup", "acme", "0"], "1 or more"),
    (["add", "--name", "x", "--service-start", "2026-13-01"], "not a date"),
    (["add", "--name", "x", "--quota", "-1"], "0 or more"),
    (["add", "--name", "x", "--service-start", "2027-01-01", "--service-end", "2026-01-01"], "service_end: "),
    (["add", "--name", "x", "--parent", "acme"], "parent: "),
    (["add", "--name", "acme"], "name: "),
])
def test_refusals_write_nothing(db, args, message):
    Account.objects.create(name="acme", quota_type="all", quota_total=5, quota_available=5)
    before = list(Account.objects.values())
    with pytest.raises(CommandError, match=message):
        run("hub_account", *args)
    assert list(Account.objects.values()) == before and QuotaChange.objects.count() == 0


def test_hub_app_add_with_an_account(db):
    server_id = add_server()
    a = Account.objects.create(name="acme")
    by_name = run_json("hub_app", "add", "--name", "shop", "--smtp", str(server_id), "--account", "acme")
    by_id = run_json("hub_app", "add", "--name", "blog", "--smtp", str(server_id), "--account", str(a.pk))
    default = run_json("hub_app", "add", "--name", "old", "--smtp", str(server_id))
    assert App.objects.get(pk=by_name["appid"]).account == a
    assert App.objects.get(pk=by_id["appid"]).account == a
    assert App.objects.get(pk=default["appid"]).account == Account.default()
    assert [r["account"] for r in json_lines(run("hub_app", "list"))] == [a.pk, a.pk, Account.default().pk]
    with pytest.raises(CommandError, match="no account"):
        run("hub_app", "add", "--name", "x", "--smtp", str(server_id), "--account", "nobody")
    assert App.objects.count() == 3
