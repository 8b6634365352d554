"""Send logs in the admin: read-only, filters, search, the sandboxed preview, resend,
CSV export, and the paginator that never counts the table."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ

from hub.admin import logs as admin_logs
from hub.admin.logs import DISPLAY_LIMIT, MAX_BULK_RESEND, PREVIEW_CSP
from hub.admin.nav import queue_badge
from hub.models import DeliveryAttempt, SendLog

from .test_admin_support import body, counts, fresh_cache, make_log, messages_of, staff_factory, su, superuser  # noqa: F401


@pytest.fixture
def setup(make_server, make_app):
    s1, s2 = make_server(name="relay-one"), make_server(name="relay-two")
    shop, blog = make_app(s1, name="shop").app, make_app(s2, name="blog").app
    return s1, s2, shop, blog


def ids(response) -> list[int]:
    return [row.pk for row in response.context["cl"].result_list]


# --- read-only ------------------------------------------------------------------------------

def test_logs_are_read_only(su, setup):
    _s1, _s2, shop, _blog = setup
    row = make_log(shop, subject="keep me")
    assert su.get("/admin/hub/sendlog/add/").status_code == 403
    r = su.post(f"/admin/hub/sendlog/{row.pk}/change/", {"subject": "changed"})
    assert r.status_code == 403
    assert su.post(f"/admin/hub/sendlog/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.subject == "keep me"
    view = su.get(f"/admin/hub/sendlog/{row.pk}/change/")
    assert view.status_code == 200 and 'name="subject"' not in body(view)


def test_detail_shows_the_smtp_reply_and_refusals(su, setup):
    s1, _s2, shop, _blog = setup
    row = make_log(shop, s1, status="sent", smtp_code=250, smtp_reply="2.0.0 Ok: queued as ABC",
                   refused_recipients={"gone@example.com": [550, "5.1.1 User unknown"]}, attempts=2)
    text = body(su.get(f"/admin/hub/sendlog/{row.pk}/change/"))
    assert "2.0.0 Ok: queued as ABC" in text and "gone@example.com" in text and "5.1.1 User unknown" in text


# --- filters and search ---------------------------------------------------------------------

def test_filters_by_status_app_and_server(su, setup):
    s1, s2, shop, blog = setup
    a = make_log(shop, s1, status="sent")
    b = make_log(shop, s1, status="failed")
    c = make_log(blog, s2, status="failed")
    assert ids(su.get("/admin/hub/sendlog/?status__exact=failed")) == [c.pk, b.pk]
    assert ids(su.get(f"/admin/hub/sendlog/?app__id__exact={shop.pk}")) == [b.pk, a.pk]
    assert ids(su.get(f"/admin/hub/sendlog/?smtp_server__id__exact={s2.pk}")) == [c.pk]
    assert ids(su.get(f"/admin/hub/sendlog/?status__exact=failed&app__id__exact={shop.pk}")) == [b.pk]


@pytest.mark.parametrize("lang,fmt", [("en", "%Y-%m-%d"), ("zh-hans", "%Y/%m/%d")])
def test_date_range_filter_takes_whole_local_days(su, setup, lang, fmt):
    _s1, _s2, shop, _blog = setup
    tz = timezone.get_current_timezone()
    day = datetime.date(2026, 3, 10)

    def at(d: datetime.date, h: int, m: int = 0) -> datetime.datetime:
        return datetime.datetime.combine(d, datetime.time(h, m), tz)

    before = make_log(shop, created_at=at(day - datetime.timedelta(days=1), 23, 59))
    start = make_log(shop, created_at=at(day, 0, 0))
    late = make_log(shop, created_at=at(day + datetime.timedelta(days=1), 23, 59))  # the "to" day is included
    after = make_log(shop, created_at=at(day + datetime.timedelta(days=2), 0, 0))
    su.defaults["HTTP_ACCEPT_LANGUAGE"] = lang
    frm, to = day.strftime(fmt), (day + datetime.timedelta(days=1)).strftime(fmt)
    r = su.get("/admin/hub/sendlog/", {"created_at_from": frm, "created_at_to": to})
    assert ids(r) == [late.pk, start.pk]
    assert before.pk not in ids(r) and after.pk not in ids(r)


def test_search_by_recipient_subject_and_message_id(su, setup):
    _s1, _s2, shop, _blog = setup
    a = make_log(shop, to="alice@example.com", subject="Invoice 7", message_id="<aaa@hub>")
    b = make_log(shop, to="bob@example.com", subject="Welcome", message_id="<bbb@hub>")
    assert ids(su.get("/admin/hub/sendlog/?q=alice")) == [a.pk]
    assert ids(su.get("/admin/hub/sendlog/?q=welcome")) == [b.pk]
    assert ids(su.get("/admin/hub/sendlog/", {"q": "<bbb@hub>"})) == [b.pk]
    assert ids(su.get("/admin/hub/sendlog/", {"q": f"#{a.pk}"})) == [a.pk]
    assert ids(su.get("/admin/hub/sendlog/?q=nobody")) == []


# --- the preview ------------------------------------------------------------------------------

HOSTILE = ('<p id="t">Hello</p><script>document.title="pwned"</script>'
           '<img src="http://127.0.0.1:9/pixel.gif"><style>p{color:red}</style>')


def test_preview_is_sandboxed(su, setup):
    _s1, _s2, shop, _blog = setup
    row = make_log(shop, html_body=HOSTILE)
    r = su.get(f"/admin/hub/sendlog/{row.pk}/preview/")
    assert r.status_code == 200
    assert r.content.decode() == HOSTILE  # the body as stored; the browser is what's restricted
    csp = r["Content-Security-Policy"]
    assert csp == PREVIEW_CSP
    assert "default-src 'none'" in csp and "img-src data:" in csp and csp.endswith("sandbox")
    assert "script-src" not in csp  # scripts fall under default-src 'none'
    assert r["X-Frame-Options"] == "SAMEORIGIN" and r["Referrer-Policy"] == "no-referrer"
    page = body(su.get(f"/admin/hub/sendlog/{row.pk}/change/"))
    assert f'<iframe id="hub-preview" src="/admin/hub/sendlog/{row.pk}/preview/" sandbox=""' in page
    # The source view shows the HTML as text, never as markup of the admin page.
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page
    assert '<script>document.title="pwned"</script>' not in page


def test_preview_needs_view_permission(staff_factory, setup):
    _s1, _s2, shop, _blog = setup
    row = make_log(shop)
    assert staff_factory().get(f"/admin/hub/sendlog/{row.pk}/preview/").status_code == 403
    assert staff_factory("hub.view_sendlog").get(f"/admin/hub/sendlog/{row.pk}/preview/").status_code == 200


# --- resend -----------------------------------------------------------------------------------

def test_resend_queues_a_linked_copy(su, smtp_sink, make_server, make_app, run_queue):
    p = make_app(make_server(smtp_sink))
    row = make_log(p.app, status="failed", to="Ann <ann@example.com>", cc="cc@example.com",
                   subject="主题 again", html_body="<p>body</p>", text_body="body", error="550 nope")
    confirm = su.get(f"/admin/hub/sendlog/{row.pk}/resend/")
    assert confirm.status_code == 200 and SendLog.objects.count() == 1
    r = su.post(f"/admin/hub/sendlog/{row.pk}/resend/")
    copy = SendLog.objects.exclude(pk=row.pk).get()
    assert r.status_code == 302 and r["Location"] == f"/admin/hub/sendlog/{copy.pk}/change/"
    assert copy.status == "queued" and copy.app == p.app
    assert (copy.to, copy.cc, copy.subject, copy.html_body, copy.text_body) == (
        row.to, row.cc, row.subject, row.html_body, row.text_body)
    assert copy.message_id != row.message_id
    assert copy.resent_from == row and copy.source == "admin"
    assert f'href="/admin/hub/sendlog/{copy.pk}/change/">resent as #{copy.pk}' in body(
        su.get(f"/admin/hub/sendlog/{row.pk}/change/"))
    assert LogEntry.objects.get(object_id=str(row.pk)).change_message == f"Resent as #{copy.pk}"
    assert LogEntry.objects.get(object_id=str(copy.pk)).change_message == f"Resend of #{row.pk}"
    assert run_queue() == 1
    copy.refresh_from_db()
    assert copy.status == "sent" and len(smtp_sink.messages) == 1
    # Each delivery attempt is shown with the server's reply.
    detail = body(su.get(f"/admin/hub/sendlog/{copy.pk}/change/"))
    assert "Delivery attempts" in detail and detail.count("Ok: queued as TEST") >= 2
    assert sorted(smtp_sink.messages[0].rcpt_tos) == ["ann@example.com", "cc@example.com"]
    row.refresh_from_db()
    assert row.status == "failed"  # the original is left as it was


def test_resend_of_a_disabled_apps_message_is_refused(su, make_server, make_app):
    p = make_app(make_server(), enabled=False)
    row = make_log(p.app)
    before = counts()
    r = su.post(f"/admin/hub/sendlog/{row.pk}/resend/", follow=True)
    assert any("its app is disabled" in m for m in messages_of(r))
    assert counts() == before


@pytest.mark.parametrize("perms", [(), ("hub.view_sendlog",)])
def test_resend_is_refused_without_add_permission(staff_factory, make_server, make_app, perms):
    p = make_app(make_server())
    row = make_log(p.app)
    client = staff_factory(*perms)
    before = counts()
    assert client.post(f"/admin/hub/sendlog/{row.pk}/resend/").status_code == 403
    r = client.post("/admin/hub/sendlog/", {"action": "resend_selected", "_selected_action": [row.pk]})
    assert r.status_code in (302, 403)
    assert counts() == before and OrmQ.objects.count() == 0


def test_resend_with_add_permission(staff_factory, make_server, make_app):
    p = make_app(make_server())
    row = make_log(p.app)
    client = staff_factory("hub.view_sendlog", "hub.add_sendlog")
    assert client.post(f"/admin/hub/sendlog/{row.pk}/resend/").status_code == 302
    assert SendLog.objects.count() == 2 and OrmQ.objects.count() == 1


def test_bulk_resend(su, make_server, make_app):
    p = make_app(make_server())
    rows = [make_log(p.app, subject=f"m{i}") for i in range(3)]
    r = su.post("/admin/hub/sendlog/", {"action": "resend_selected", "_selected_action": [x.pk for x in rows[:2]]})
    assert r.status_code == 302
    copies = SendLog.objects.filter(pk__gt=rows[-1].pk)
    assert sorted(copies.values_list("subject", flat=True)) == ["m0", "m1"]
    # Both copies wait in the outbox; one drain task delivers them all.
    assert set(copies.values_list("status", flat=True)) == {SendLog.Status.QUEUED}
    assert OrmQ.objects.count() == 1


def test_bulk_resend_is_bounded(su, make_server, make_app):
    p = make_app(make_server())
    rows = SendLog.objects.bulk_create([SendLog(app=p.app, to="a@example.com", subject="s", html_body="m")
                                        for _ in range(MAX_BULK_RESEND + 1)])
    before = counts()
    r = su.post("/admin/hub/sendlog/", {"action": "resend_selected", "_selected_action": [x.pk for x in rows]},
                follow=True)
    assert any("at most" in m for m in messages_of(r))
    assert counts() == before


def test_resend_keeps_attachments_and_the_calendar_event(su, client, make_server, make_app, run_queue, smtp_sink):
    p = make_app(make_server(smtp_sink))
    pdf = io.BytesIO(b"%PDF-1.4 tiny")
    pdf.name = "tiny.pdf"
    r = client.post("/api/v1/send", {
        **p.creds, "to": "a@example.com", "subject": "invite", "message": "<p>come</p>",
        "event_start": "2030-01-02T10:00", "event_end": "2030-01-02T11:00",
        "attachments": [pdf],
    })
    assert r.json()["code"] == 0, r.json()
    original = SendLog.objects.get()
    assert original.attachment_count == 1 and original.event
    su.post(f"/admin/hub/sendlog/{original.pk}/resend/")
    copy = SendLog.objects.exclude(pk=original.pk).get()
    assert copy.attachment_count == 1 and copy.event["uid"] == original.event["uid"]
    assert bytes(copy.attachments.get().content) == b"%PDF-1.4 tiny"
    run_queue()
    assert len(smtp_sink.messages) == 2
    parts = {part.get_filename() or part.get_content_type() for part in smtp_sink.messages[1].message.walk()}
    assert "tiny.pdf" in parts and "text/calendar" in parts


def test_attachment_download_is_never_inline(su, staff_factory, client, make_server, make_app):
    p = make_app(make_server())
    evil = io.BytesIO(b"<script>alert(1)</script>")
    evil.name = "evil.html"
    assert client.post("/api/v1/send", {**p.creds, "to": "a@example.com", "subject": "s", "message": "<p>m</p>",
                                        "attachments": [evil]}).json()["code"] == 0
    row = SendLog.objects.get()
    attachment = row.attachments.get()
    url = f"/admin/hub/sendlog/{row.pk}/attachment/{attachment.pk}/"
    assert url in body(su.get(f"/admin/hub/sendlog/{row.pk}/change/"))
    r = su.get(url)
    assert r.status_code == 200 and r.content == b"<script>alert(1)</script>"
    assert r["Content-Type"] == "application/octet-stream"
    assert r["Content-Disposition"] == "attachment; filename*=UTF-8''evil.html"
    assert staff_factory().get(url).status_code == 403


# --- CSV export -------------------------------------------------------------------------------

def read_csv(response) -> list[list[str]]:
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="send-logs-')
    text = body(response)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_export_follows_the_lists_filters(su, setup):
    s1, _s2, shop, blog = setup
    make_log(shop, s1, status="sent", subject="ok")
    failed = make_log(shop, s1, status="failed", subject="=HYPERLINK(\"http://evil\")", to="x@example.com")
    make_log(blog, status="failed")
    rows = read_csv(su.post(f"/admin/hub/sendlog/export.csv?status__exact=failed&app__id__exact={shop.pk}"))
    header, data = rows[0], rows[1:]
    assert header[:4] == ["id", "created", "appid", "app"]
    assert len(data) == 1 and data[0][0] == str(failed.pk) and data[0][3] == "shop"
    assert data[0][header.index("subject")] == "'=HYPERLINK(\"http://evil\")"  # no formula
    assert data[0][header.index("smtp_server")] == "relay-one"
    assert LogEntry.objects.filter(change_message__startswith="Exported send logs").count() == 1
    # The list page has the export button, a POST form with its own filters and the CSRF token.
    page = body(su.get("/admin/hub/sendlog/?status__exact=failed"))
    form = page[page.index('<form id="hub-export-form"'):]
    form = form[:form.index("</form>")]
    assert 'method="post" action="/admin/hub/sendlog/export.csv?status__exact=failed"' in form
    assert 'name="csrfmiddlewaretoken"' in form


def test_export_by_get_only_asks(su, setup):
    # A GET (a link followed, a prefetch) exports nothing and writes nothing: it shows what
    # would be exported and a POST button.
    _s1, _s2, shop, _blog = setup
    make_log(shop, subject="secret subject")
    before = counts()
    r = su.get("/admin/hub/sendlog/export.csv", {"status__exact": "sent"})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/html")
    text = body(r)
    assert "secret subject" not in text and "status__exact=sent" in text
    assert '<form method="post"' in text and 'id="hub-action-form"' in text
    assert counts() == before
    assert su.put("/admin/hub/sendlog/export.csv").status_code == 405
    assert counts() == before


def test_export_reads_pages_by_id(su, setup, monkeypatch):
    # Keyset paging (id > last LIMIT n), not one long cursor: .iterator() does not stream
    # on MySQL/MariaDB. Five rows in pages of two: three bounded queries, rows in id order.
    _s1, _s2, shop, _blog = setup
    made = [make_log(shop, subject=f"m{i}") for i in range(5)]
    monkeypatch.setattr(admin_logs, "CSV_CHUNK", 2)
    response = su.post("/admin/hub/sendlog/export.csv")
    with CaptureQueriesContext(connection) as queries:
        rows = read_csv(response)
    assert [row[0] for row in rows[1:]] == [str(m.pk) for m in made]
    reads = [q["sql"] for q in queries if "FROM `hub_sendlog`" in q["sql"].replace('"', "`")]
    assert len(reads) == 3, reads
    assert all("LIMIT 2" in sql for sql in reads), reads
    assert str(made[1].pk) in reads[1] and str(made[3].pk) in reads[2]  # id > the last one seen


def test_export_selected(su, setup):
    _s1, _s2, shop, _blog = setup
    a, _b, c = make_log(shop), make_log(shop), make_log(shop)
    r = su.post("/admin/hub/sendlog/", {"action": "export_selected_csv", "_selected_action": [a.pk, c.pk]})
    assert [row[0] for row in read_csv(r)[1:]] == [str(a.pk), str(c.pk)]


def test_export_is_refused_without_view_permission(staff_factory, setup):
    _s1, _s2, shop, _blog = setup
    make_log(shop)
    client = staff_factory("hub.view_app")
    before = counts()
    assert client.get("/admin/hub/sendlog/export.csv").status_code == 403
    assert client.post("/admin/hub/sendlog/export.csv").status_code == 403
    assert client.post("/admin/hub/sendlog/", {"action": "export_selected_csv",
                                               "_selected_action": [1]}).status_code == 403
    assert counts() == before


# --- the paginator ------------------------------------------------------------------------------

def test_paging_without_counting(su, setup):
    _s1, _s2, shop, _blog = setup
    SendLog.objects.bulk_create([SendLog(app=shop, to=f"r{i}@example.com", subject=f"s{i}", html_body="m")
                                 for i in range(120)])
    newest = SendLog.objects.order_by("-id").values_list("id", flat=True)
    with CaptureQueriesContext(connection) as queries:
        first = su.get("/admin/hub/sendlog/")
    assert ids(first) == list(newest[:50])
    counted = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "hub_sendlog" in q["sql"]]
    # Only the sidebar's queue badge counts, and only the waiting rows (status index).
    assert [sql for sql in counted if "'queued', 'retrying'" not in sql] == []
    assert 'rel="next"' in body(first) and "Page 1" in body(first)
    third = su.get("/admin/hub/sendlog/?p=3")
    assert ids(third) == list(newest[100:120])
    assert 'rel="next"' not in body(third) and 'rel="prev"' in body(third)
    # Past the end: the admin's usual answer to a bad page.
    assert su.get("/admin/hub/sendlog/?p=9").status_code == 302


# --- the detail page: each read-only value computed once, huge bodies cut -------------------------

def change_page_queries(client, row: SendLog) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        r = client.get(f"/admin/hub/sendlog/{row.pk}/change/")
    assert r.status_code == 200
    return [q["sql"].replace("`", '"') for q in queries]  # MariaDB quotes names with backticks


def add_history(row: SendLog, server, n: int) -> None:
    for i in range(n):
        DeliveryAttempt.objects.create(log=row, server=server, result="deferred", smtp_code=451,
                                       smtp_reply=f"try later {i}", started_at=timezone.now())
        make_log(row.app, resent_from=row, subject=f"copy {i}")


def test_change_page_queries_do_not_grow_with_attempts_and_resends(su, setup):
    s1, _s2, shop, _blog = setup
    one, many = make_log(shop, s1, status="failed"), make_log(shop, s1, status="failed")
    add_history(one, s1, 1)
    add_history(many, s1, 6)
    change_page_queries(su, one)  # warm the per-process caches (content types, site settings)
    few, lots = change_page_queries(su, one), change_page_queries(su, many)
    assert len(lots) == len(few), "\n".join(lots)
    assert len(lots) <= 20, "\n".join(lots)
    # Each read-only value that queries does so once, not once per read of field.contents.
    assert sum('WHERE "hub_sendlog"."resent_from_id" =' in sql for sql in lots) == 1, "\n".join(lots)
    assert sum("hub_attachment" in sql for sql in lots) == 1, "\n".join(lots)
    assert sum("django_admin_log" in sql for sql in lots) == 1, "\n".join(lots)
    # The attempts' servers come with the attempts (one join, no query per attempt).
    assert sum("hub_deliveryattempt" in sql for sql in lots) == 1, "\n".join(lots)
    page = body(su.get(f"/admin/hub/sendlog/{many.pk}/change/"))
    assert page.count("try later") == 6 and page.count("relay-one") >= 7


def test_a_huge_body_is_converted_once_and_cut(su, setup, monkeypatch):
    _s1, _s2, shop, _blog = setup
    html = "<p>" + "word " * 100_000 + "</p><p>THE-END</p>"  # ~500 KB, no text part
    row = make_log(shop, html_body=html, text_body="")
    calls = []
    original = admin_logs.html_to_text

    def counting(value: str) -> str:
        calls.append(len(value))
        return original(value)

    monkeypatch.setattr(admin_logs, "html_to_text", counting)
    page = body(su.get(f"/admin/hub/sendlog/{row.pk}/change/"))
    assert calls == [DISPLAY_LIMIT]  # once per page, on the first 100 KB only
    assert "THE-END" not in page
    assert page.count("Showing the first 100,000 of") == 2  # the text and the HTML source
    assert len(page) < 3 * DISPLAY_LIMIT + 200_000
    # The preview and the download still give the whole body.
    assert "THE-END" in su.get(f"/admin/hub/sendlog/{row.pk}/preview/").content.decode()


def test_a_huge_text_body_is_cut(su, setup):
    _s1, _s2, shop, _blog = setup
    row = make_log(shop, html_body="<p>short</p>", text_body="x" * (DISPLAY_LIMIT + 10) + "TEXT-END")
    page = body(su.get(f"/admin/hub/sendlog/{row.pk}/change/"))
    assert "TEXT-END" not in page and "Showing the first 100,000 of 100,018 characters." in page
    small = make_log(shop, html_body="<p>short</p>", text_body="all of it")
    page = body(su.get(f"/admin/hub/sendlog/{small.pk}/change/"))
    assert "all of it" in page and "Showing the first" not in page


# --- the sidebar's queue badge ---------------------------------------------------------------------

def test_queue_badge_counts_at_most_a_thousand(rf, superuser, setup):
    _s1, _s2, shop, _blog = setup
    request = rf.get("/admin/")
    request.user = superuser
    assert queue_badge(request) == ""
    SendLog.objects.bulk_create([SendLog(app=shop, to="a@example.com", subject="s", html_body="m",
                                         status="queued") for _ in range(999)])
    SendLog.objects.bulk_create([SendLog(app=shop, to="a@example.com", subject="s", html_body="m",
                                         status="sent") for _ in range(5)])
    assert queue_badge(request) == "999"
    SendLog.objects.bulk_create([SendLog(app=shop, to="a@example.com", subject="s", html_body="m",
                                         status="retrying") for _ in range(2)])
    with CaptureQueriesContext(connection) as queries:
        assert queue_badge(request) == "999+"
    assert len(queries) == 1 and "LIMIT 1000" in queries[0]["sql"]
