"""V28 chapter 7, bs.php: domains (7.1-7.6) and mailboxes (7.7-7.10), called as the
reference's examples do (Basic auth, GET query strings, 7.3 as a POST form), XML parsed;
every refusal checked for its answer and for writing nothing."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests

from hub.domains import services
from hub.domains.models import DkimKey, Domain, Mailbox

from .helpers import envelope, fields, parse

SPF, MX = "spf.hub.test", "mx.hub.test"


@pytest.fixture(autouse=True)
def _hub_hosts(settings, dns_server):
    settings.HUB_SPF_INCLUDE, settings.HUB_MX_HOST = SPF, MX
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def publish(dns_server, name: str) -> None:
    dns_server.add(name, "TXT", f"v=spf1 include:{SPF} -all")
    dns_server.add(name, "MX", f"10 {MX}")


def counts() -> tuple[int, int, int]:
    return Domain.objects.count(), DkimKey.objects.count(), Mailbox.objects.count()


def get(client, tenant, query: str, **extra):
    return client.get(f"/mm-ms/apinew/bs.php?{query}", **tenant.headers, **extra)


@pytest.fixture
def manager(make_tenant):
    return make_tenant("mgr", is_manager=True)


@pytest.fixture
def sub(make_tenant, manager):
    return make_tenant("sub", parent=manager.account)


# --- 7.1 / 7.2 ----------------------------------------------------------------------------

def test_add_and_list_over_http_like_curl(live_server, tenant_a, dns_server):
    publish(dns_server, "ok.example")
    base = f"{live_server.url}/mm-ms/apinew/bs.php"
    r = requests.get(f"{base}?do=customer-domain-add&domain=ok.example", auth=tenant_a.auth, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/xml; charset=utf-8"
    ok = Domain.objects.get(name="ok.example")
    assert envelope(r) == ("success_and_check_ok", str(ok.pk))
    assert b"<data>%d</data>" % ok.pk in r.content  # plain text, as the sample
    r = requests.get(f"{base}?do=customer-domain-add&domain=pending.example", auth=tenant_a.auth, timeout=10)
    pending = Domain.objects.get(name="pending.example")
    assert envelope(r) == ("success", str(pending.pk))
    r = requests.get(f"{base}?do=domain-list", auth=tenant_a.auth, timeout=10)
    root = parse(r.content)
    assert root.tag == "domain_list"
    assert [fields(d) for d in root] == [
        [("customer_id", str(tenant_a.account.pk)), ("domain", "ok.example")],
        [("customer_id", str(tenant_a.account.pk)), ("domain", "pending.example")]]


def test_list_shows_only_own_domains(client, tenant_a, tenant_b):
    services.add_domain(tenant_b.account, "bob.example")
    root = parse(get(client, tenant_a, "do=domain-list"))
    assert list(root) == []


@pytest.mark.parametrize("query,status,ident", [
    ("do=customer-domain-add", 400, "param_error"),
    ("do=customer-domain-add&domain=not_a_domain", 400, "domain_format_error"),
    ("do=customer-domain-add&domain=" + "a" * 260 + ".com", 400, "domain_format_error"),
])
def test_add_refusals_write_nothing(client, tenant_a, query, status, ident):
    before = counts()
    response = get(client, tenant_a, query)
    assert response.status_code == status and envelope(response)[0] == ident
    assert counts() == before


def test_duplicate_domain_refused_same_answer_for_any_account(client, tenant_a, tenant_b):
    services.add_domain(tenant_b.account, "taken.example")
    before = counts()
    for tenant in (tenant_a, tenant_b):
        response = get(client, tenant, "do=customer-domain-add&domain=TAKEN.example")
        assert response.status_code == 400 and envelope(response)[0] == "domain_exists"
    assert counts() == before


def test_idn_domain_is_stored_as_punycode(client, tenant_a):
    response = get(client, tenant_a, "do=customer-domain-add&domain=b%C3%BCcher.example")
    assert envelope(response)[0] == "success"
    assert Domain.objects.filter(name="xn--bcher-kva.example", account=tenant_a.account).exists()


# --- 7.3 ----------------------------------------------------------------------------------

def test_domain_check_statuses_0_to_3(client, tenant_a, tenant_b, dns_server):
    publish(dns_server, "three.example")
    publish(dns_server, "one.example")
    three = services.add_domain(tenant_a.account, "three.example")
    two = services.add_domain(tenant_a.account, "two.example")
    services.add_domain(tenant_b.account, "bobs.example")  # another account's: "not in the system" for alice
    before_domains = Domain.objects.count()
    response = client.post("/mm-ms/apinew/bs.php?do=domain-check",
                           {"domains": "three.example, two.example, one.example, zero.example, bobs.example"},
                           **tenant_a.headers)
    assert response.status_code == 200
    root = parse(response.content)
    assert root.tag == "domain_list"
    rows = [dict(fields(d)) for d in root]
    assert list(rows[0]) == ["customer_id", "domain_id", "val", "status", "info", "dkim"]
    a = str(tenant_a.account.pk)
    assert [(r["customer_id"], r["domain_id"], r["val"], r["status"], r["info"]) for r in rows] == [
        (a, str(three.pk), "three.example", "3", "添加成功并验证通过"),
        (a, str(two.pk), "two.example", "2", "添加成功但验证不通过"),
        (a, "0", "one.example", "1", "系统不存在但验证通过"),
        (a, "0", "zero.example", "0", "系统不存在并验证不通过"),
        (a, "0", "bobs.example", "0", "系统不存在并验证不通过"),
    ]
    rsa = three.keys.get(algorithm=DkimKey.Algorithm.RSA)
    assert rows[0]["dkim"] == f"v=DKIM1; k=rsa; p={rsa.public_key}" and rows[2]["dkim"] == ""
    assert Domain.objects.count() == before_domains  # checking adds nothing


def test_domain_check_english_and_refusals(client, tenant_a):
    response = client.post("/apinew/bs.php?do=domain-check", {"domains": "x.example"}, HTTP_ACCEPT_LANGUAGE="en",
                           **tenant_a.headers)
    assert parse(response.content).find("domain/info").text == "not in the system and not verified"
    response = client.get("/apinew/bs.php?do=domain-check&domains=x.example", **tenant_a.headers)
    assert response.status_code == 405 and envelope(response)[0] == "method_not_allowed"
    response = client.post("/apinew/bs.php?do=domain-check", {"domains": " , "}, **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "domains_param_error"
    many = ",".join(f"d{i}.example" for i in range(21))
    response = client.post("/apinew/bs.php?do=domain-check", {"domains": many}, **tenant_a.headers)
    assert response.status_code == 400 and envelope(response)[0] == "domains_param_error"


# --- 7.4 / 7.5 / 7.6 -----------------------------------------------------------------------

def test_manager_adds_and_deletes_subaccount_domain(client, manager, sub, dns_server):
    publish(dns_server, "sub.example")
    response = get(client, manager, f"do=domain-add&customer_id={sub.account.pk}&domain=sub.example")
    domain = Domain.objects.get(name="sub.example")
    assert envelope(response) == ("success_and_check_ok", str(domain.pk)) and domain.account == sub.account
    # Listed for the sub-account through user_type=manager + customer_id (7.1).
    root = parse(get(client, manager, f"do=domain-list&user_type=manager&customer_id={sub.account.pk}"))
    assert [fields(d) for d in root] == [[("customer_id", str(sub.account.pk)), ("domain", "sub.example")]]
    # Its customer cannot delete it once verified (7.6) ...
    response = get(client, sub, "do=customer-domain-del&domain=sub.example")
    assert response.status_code == 400 and envelope(response)[0] == "domain_verified_cannot_delete"
    assert Domain.objects.filter(pk=domain.pk).exists()
    # ... the manager can (7.5).
    response = get(client, manager, f"do=domain-del&customer_id={sub.account.pk}&domain=sub.example")
    assert envelope(response)[0] == "success"
    assert not Domain.objects.filter(pk=domain.pk).exists() and not DkimKey.objects.filter(domain=domain.pk).exists()


def test_customer_deletes_unverified_domain(client, tenant_a):
    services.add_domain(tenant_a.account, "gone.example")
    response = get(client, tenant_a, "do=customer-domain-del&domain=gone.example")
    assert envelope(response)[0] == "success" and not Domain.objects.filter(name="gone.example").exists()


@pytest.mark.parametrize("do", ["domain-add", "domain-del"])
def test_manager_only_endpoints_refuse_customers_and_own_account(client, tenant_a, manager, sub, make_tenant, do):
    services.add_domain(sub.account, "keep.example")
    stranger = make_tenant("stranger")
    before = counts()
    # A customer (not a manager): without customer_id, and naming another account.
    response = get(client, tenant_a, f"do={do}&domain=keep.example")
    assert response.status_code == 403 and envelope(response)[0] == "forbidden"
    response = get(client, tenant_a, f"do={do}&customer_id={sub.account.pk}&domain=keep.example")
    assert response.status_code == 403 and envelope(response)[0] == "forbidden"
    # A manager without a sub-account's id, or with a non-child's.
    response = get(client, manager, f"do={do}&domain=keep.example")
    assert response.status_code == 400 and envelope(response)[0] == "param_error"
    response = get(client, manager, f"do={do}&customer_id={stranger.account.pk}&domain=keep.example")
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    assert counts() == before


def test_delete_other_accounts_domain_is_not_exist(client, tenant_a, tenant_b, manager, sub):
    services.add_domain(tenant_b.account, "bob.example")
    before = counts()
    response = get(client, tenant_a, "do=customer-domain-del&domain=bob.example")
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    response = get(client, manager, f"do=domain-del&customer_id={sub.account.pk}&domain=bob.example")
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    assert counts() == before


# --- 7.7 - 7.10 ----------------------------------------------------------------------------

@pytest.fixture
def verified_a(tenant_a, dns_server):
    publish(dns_server, "a.example")
    domain = services.add_domain(tenant_a.account, "a.example")
    assert domain.status == Domain.Status.VERIFIED
    return domain


def test_mailbox_lifecycle(client, tenant_a, verified_a):
    response = get(client, tenant_a, "do=mailbox-add&mailbox=Sales@A.example&pwd=s3cret-pass")
    box = Mailbox.objects.get(address="sales@a.example")
    assert envelope(response) == ("success", str(box.pk))
    assert box.app == tenant_a.app and box.enabled and box.check_password("s3cret-pass")
    assert "s3cret-pass" not in box.password_hash
    for i in range(3):
        get(client, tenant_a, f"do=mailbox-add&mailbox=u{i}@a.example&pwd=password{i}")
    root = parse(get(client, tenant_a, "do=mailbox-list&domain=a.example"))
    assert root.tag == "mailbox_list" and len(root) == 4
    assert fields(root[0]) == [("customer_id", str(tenant_a.account.pk)), ("domain", "a.example"),
                               ("name", "sales"), ("mailbox", "sales@a.example"), ("status", "true")]
    page2 = parse(get(client, tenant_a, "do=mailbox-list&domain=a.example&page=2&limit=3"))
    assert [d.findtext("mailbox") for d in page2] == ["u2@a.example"]
    # 7.10: disable and change the password.
    response = get(client, tenant_a, "do=mailbox-edit&mailbox=sales@a.example&pwd=new-password&status=0")
    assert envelope(response)[0] == "success"
    box.refresh_from_db()
    assert not box.enabled and box.check_password("new-password")
    root = parse(get(client, tenant_a, "do=mailbox-list&domain=a.example&page=1&limit=1"))
    assert root[0].findtext("status") == "false"
    # 7.9
    response = get(client, tenant_a, "do=mailbox-del&mailbox=sales@a.example")
    assert envelope(response)[0] == "success" and not Mailbox.objects.filter(pk=box.pk).exists()


@pytest.mark.parametrize("query,status,ident", [
    ("do=mailbox-add&mailbox=x@a.example", 400, "param_error"),
    ("do=mailbox-add&pwd=password1", 400, "param_error"),
    ("do=mailbox-add&mailbox=x@a.example&pwd=short", 400, "password_error"),
    ("do=mailbox-add&mailbox=no-at-sign&pwd=password1", 400, "mailbox_format_error"),
    ("do=mailbox-add&mailbox=x@other.example&pwd=password1", 404, "not_exist"),
    ("do=mailbox-add&mailbox=dup@a.example&pwd=password1", 400, "mailbox_exists"),
    ("do=mailbox-list&domain=a.example&limit=501&page=1", 400, "param_error"),
    ("do=mailbox-list&domain=other.example", 404, "not_exist"),
    ("do=mailbox-edit&mailbox=dup@a.example", 400, "param_error"),
    ("do=mailbox-edit&mailbox=dup@a.example&status=maybe", 400, "param_error"),
    ("do=mailbox-edit&mailbox=nobody@a.example&status=1", 404, "not_exist"),
    ("do=mailbox-del&mailbox=nobody@a.example", 404, "not_exist"),
])
def test_mailbox_refusals_write_nothing(client, tenant_a, verified_a, query, status, ident):
    from hub.domains import mailboxes

    box = mailboxes.add_mailbox(tenant_a.account, "dup@a.example", "password0")
    before, hash_before = counts(), box.password_hash
    response = get(client, tenant_a, query)
    assert response.status_code == status and envelope(response)[0] == ident, response.content
    box.refresh_from_db()
    assert counts() == before and box.password_hash == hash_before and box.enabled


def test_mailbox_needs_verified_domain(client, tenant_a):
    services.add_domain(tenant_a.account, "pending.example")
    before = counts()
    response = get(client, tenant_a, "do=mailbox-add&mailbox=x@pending.example&pwd=password1")
    assert response.status_code == 400 and envelope(response)[0] == "domain_not_verified"
    assert counts() == before


def test_mailboxes_cross_account_and_manager(client, tenant_a, tenant_b, verified_a, manager, sub, dns_server):
    from hub.domains import mailboxes

    mailboxes.add_mailbox(tenant_a.account, "alice@a.example", "password0")
    before = counts()
    for query in ("do=mailbox-list&domain=a.example", "do=mailbox-del&mailbox=alice@a.example",
                  "do=mailbox-edit&mailbox=alice@a.example&status=0",
                  "do=mailbox-add&mailbox=evil@a.example&pwd=password1"):
        response = get(client, tenant_b, query)
        assert response.status_code == 404 and envelope(response)[0] == "not_exist", query
        # A customer naming another account: refused whatever the endpoint.
        response = get(client, tenant_b, f"{query}&customer_id={tenant_a.account.pk}")
        assert response.status_code == 403 and envelope(response)[0] == "forbidden", query
        # A manager naming a non-child.
        response = get(client, manager, f"{query}&user_type=manager&customer_id={tenant_a.account.pk}")
        assert response.status_code == 404 and envelope(response)[0] == "not_exist", query
    assert counts() == before and Mailbox.objects.get(address="alice@a.example").enabled
    # The manager acts for its sub-account.
    publish(dns_server, "s.example")
    services.add_domain(sub.account, "s.example")
    sid = sub.account.pk
    response = get(client, manager, f"do=mailbox-add&user_type=manager&customer_id={sid}&mailbox=m@s.example"
                                    "&pwd=password1")
    assert envelope(response)[0] == "success"
    assert Mailbox.objects.get(address="m@s.example").app == sub.app
    root = parse(get(client, manager, f"do=mailbox-list&user_type=manager&customer_id={sid}&domain=s.example"))
    assert [d.findtext("mailbox") for d in root] == ["m@s.example"]
    assert root[0].findtext("customer_id") == str(sid)


@pytest.mark.parametrize("query", [
    "do=domain-list", "do=customer-domain-add&domain=x.example", "do=customer-domain-del&domain=x.example",
    "do=mailbox-list&domain=x.example"])
def test_customer_naming_another_account_is_refused(client, tenant_a, tenant_b, query):
    before = counts()
    response = get(client, tenant_a, f"{query}&customer_id={tenant_b.account.pk}")
    assert response.status_code == 403 and envelope(response)[0] == "forbidden"
    response = get(client, tenant_a, f"{query}&user_type=customer&customer_id={tenant_b.account.pk}")
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    assert counts() == before


def test_post_form_works_like_get(client, tenant_a, verified_a):
    response = client.post("/apinew/bs.php?do=mailbox-add", {"mailbox": "form@a.example", "pwd": "password1"},
                           **tenant_a.headers)
    assert envelope(response)[0] == "success"


def test_no_private_key_in_any_answer(client, tenant_a, verified_a):
    pems = [k.get_private_key() for k in verified_a.keys.all()]
    answers = [get(client, tenant_a, "do=domain-list").content,
               client.post("/apinew/bs.php?do=domain-check", {"domains": "a.example"}, **tenant_a.headers).content]
    for body in answers:
        assert b"PRIVATE" not in body
        for pem in pems:
            assert pem.splitlines()[1 if "BEGIN" in pem else 0].encode() not in body


ALL_ACTIONS = [
    ("GET", "domain-list", {}),
    ("GET", "customer-domain-add", {"domain": "new.example"}),
    ("POST", "domain-check", {"domains": "s.example"}),
    ("GET", "domain-add", {"domain": "new.example"}),
    ("GET", "domain-del", {"domain": "s.example"}),
    ("GET", "customer-domain-del", {"domain": "s.example"}),
    ("GET", "mailbox-list", {"domain": "s.example"}),
    ("GET", "mailbox-add", {"mailbox": "n@s.example", "pwd": "password1"}),
    ("GET", "mailbox-del", {"mailbox": "m@s.example"}),
    ("GET", "mailbox-edit", {"mailbox": "m@s.example", "status": "0"}),
]


def _call(client, tenant, method, do, params):
    if method == "POST":
        return client.post(f"/apinew/bs.php?do={do}", params, **tenant.headers)
    return client.get(f"/apinew/bs.php?{urlencode({'do': do, **params})}", **tenant.headers)


@pytest.mark.parametrize("method,do,params", ALL_ACTIONS, ids=[a[1] for a in ALL_ACTIONS])
def test_every_action_tenancy(client, manager, sub, make_tenant, dns_server, method, do, params):
    """For every chapter 7 action: a non-child's customer_id is not_exist and a customer
    naming another account is forbidden, both writing nothing; the manager acting for its
    sub-account is allowed."""
    from hub.domains import mailboxes

    publish(dns_server, "s.example")
    services.add_domain(sub.account, "s.example")
    mailboxes.add_mailbox(sub.account, "m@s.example", "password0")
    stranger, customer = make_tenant("stranger"), make_tenant("customer")
    before = counts()
    hashes = list(Mailbox.objects.values_list("password_hash", "enabled"))
    response = _call(client, manager, method, do, {**params, "user_type": "manager",
                                                   "customer_id": stranger.account.pk})
    assert response.status_code == 404 and envelope(response)[0] == "not_exist"
    response = _call(client, customer, method, do, {**params, "customer_id": sub.account.pk})
    assert response.status_code == 403 and envelope(response)[0] == "forbidden"
    assert counts() == before and list(Mailbox.objects.values_list("password_hash", "enabled")) == hashes
    response = _call(client, manager, method, do, {**params, "user_type": "manager", "customer_id": sub.account.pk})
    if do == "customer-domain-del":  # verified: its customer's endpoint refuses, the manager uses 7.5
        assert envelope(response)[0] == "domain_verified_cannot_delete"
    else:
        assert response.status_code == 200, response.content
        assert parse(response.content).tag in ("result", "domain_list", "mailbox_list")
