"""A contacts import in the back office, end to end, in a real browser (headless Chromium, as
in test_browser.py) against the live server, with a real `manage.py qcluster` process as the
worker (tests/faults.py starts it on this test's database): log in, open a list, follow its
"Import a file" action, upload a generated CSV of a few thousand rows (some invalid, some
duplicates), and watch the progress page's bar, which polls the job's JSON, until it says the
job finished with the right counts. Then the same page once in zh_Hans."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from hub.contacts import services
from hub.contacts.models import Contact, ImportJob, MailList
from hub.models import Account
from tests.faults import Clusters

from .test_browser import CHROMEDRIVER, CHROMIUM, click, fill, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="needs Debian's chromium and chromium-driver"),
]

ROWS = 3000
CHUNK_ROWS = 500  # the job commits (and the bar moves) every 500 rows: several steps
# Bound for the whole import as the browser sees it: the cluster's start (a few seconds)
# plus a few thousand rows (well under a second of work). Generous for a loaded machine,
# and a dead cluster fails the wait at once (see `finished`).
IMPORT_DEADLINE = 120
SURNAMES = "王李张刘陈杨黄赵吴周"


def generated_csv(path: Path) -> dict[str, int]:
    """A CSV with a Chinese header row: every 20th row an invalid address, every 20th
    (offset 10) a repeat of an earlier address written in upper case (the same contact once
    normalized). Returns the counts the job must end with."""
    lines = ["邮箱,姓名"]
    invalid = duplicate = 0
    for i in range(ROWS):
        if i % 20 == 7:
            lines.append(f"not-an-address-{i},{SURNAMES[i % 10]}无效")
            invalid += 1
        elif i % 20 == 17:
            lines.append(f"READER{i - 5}@Example.COM,{SURNAMES[i % 10]}重复")
            duplicate += 1
        else:
            lines.append(f"reader{i}@example.com,{SURNAMES[i % 10]}{i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"all": ROWS, "invalid": invalid, "duplicate": duplicate, "imported": ROWS - invalid - duplicate}


@pytest.fixture
def worker(live_server, transactional_db, tmp_path, settings):
    """A real qcluster on this test's database, sharing the import directory with the live
    server; stopped before transactional_db empties the tables."""
    from django_q.models import Schedule

    settings.HUB_IMPORT_DIR = tmp_path / "imports"
    # The migrations' one-minute schedules (the hub's sweep, the import sweeper) are not
    # part of this test; without them the cluster does only what the upload queues.
    Schedule.objects.all().delete()
    clusters = Clusters(tmp_path)
    clusters.start(workers=1, env={"HUB_IMPORT_DIR": str(settings.HUB_IMPORT_DIR),
                                   "HUB_IMPORT_CHUNK_ROWS": str(CHUNK_ROWS)})
    try:
        yield clusters
    finally:
        clusters.stop_all()


def text(driver, element_id: str) -> str:
    return driver.execute_script("return document.getElementById(arguments[0]).textContent.trim()", element_id)


def test_import_a_file_and_watch_the_progress_bar_finish(live_server, browser, worker, tmp_path):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    account = Account.objects.create(name="acme")
    mail_list = services.create_list(account, "浏览器客户", "customers")
    services.create_list(account, "another list")  # the form must keep the list it came for
    csv_path = tmp_path / "客户名单.csv"
    expected = generated_csv(csv_path)
    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    base = live_server.url
    d = browser

    d.get(f"{base}/admin/login/")
    fill(d, "username", "admin")
    fill(d, "password", "a-long-test-password")
    click(d, "button[type=submit]")
    wait_for(d, "#hub-dashboard")

    # The list's page has an "Import a file" action leading to the upload form for that list.
    d.get(f"{base}/admin/contacts/maillist/{mail_list.pk}/change/")
    click(d, f"a[href='/admin/contacts/maillist/{mail_list.pk}/import/']")
    wait_for(d, "#import-form input[type=file]")
    assert Select(d.find_element(By.NAME, "mail_list")).first_selected_option.get_attribute("value") == str(
        mail_list.pk)
    d.find_element(By.CSS_SELECTOR, "#import-form input[type=file]").send_keys(str(csv_path))
    click(d, "#import-form button[name=_upload]")

    # The progress page of the new job.
    wait_for(d, "#import-bar")
    job = ImportJob.objects.get()
    assert d.current_url == f"{base}/admin/contacts/importjob/{job.pk}/progress/"
    assert (job.mail_list_id, job.filename) == (mail_list.pk, "客户名单.csv")

    widths: list[str] = []

    def finished(driver) -> bool:
        worker.check_alive()  # a cluster that died fails the test now, with its log
        # Bar and status read in one script: the page's poll cannot update between them.
        width, done = driver.execute_script(
            "return [document.getElementById('import-bar').style.width,"
            " document.getElementById('import-status').getAttribute('data-finished')]")
        if not widths or widths[-1] != width:
            widths.append(width)
        return done == "1"

    try:
        WebDriverWait(d, IMPORT_DEADLINE, poll_frequency=0.2).until(finished)
    except TimeoutException:
        job.refresh_from_db()
        raise AssertionError(f"import not finished in the browser: job status {job.status}, "
                             f"{job.count_all} rows\n{worker.logs()}") from None

    # The page shows what the job did, exactly.
    assert text(d, "import-status") == "done"
    assert (text(d, "import-progress"), d.find_element(By.ID, "import-bar").get_attribute("aria-valuenow")) == (
        "100", "100")
    assert "width: 100%" in d.find_element(By.ID, "import-bar").get_attribute("style")
    shown = {key: int(text(d, f"import-count-{key}")) for key in ("all", "imported", "invalid", "duplicate")}
    assert shown == expected
    assert not d.find_element(By.ID, "import-error").is_displayed()
    # The bar only ever grew (it may jump straight to 100 when the job beats the first poll).
    percents = [float(w.removesuffix("%")) for w in widths]
    assert percents == sorted(percents) and percents[-1] == 100

    # The real worker did it, and the database agrees with the page.
    assert "hub.contacts.tasks.run_import" in worker.logs()
    job.refresh_from_db()
    mail_list.refresh_from_db()
    assert (job.status, job.count_all, job.count_imported, job.count_invalid, job.count_duplicate) == (
        ImportJob.Status.DONE, expected["all"], expected["imported"], expected["invalid"], expected["duplicate"])
    assert mail_list.contact_count == Contact.objects.filter(mail_list=mail_list).count() == expected["imported"]
    assert not mail_list.importing
    assert Contact.objects.filter(mail_list=mail_list, email="reader0@example.com", fullname="王0").exists()
    assert not Path(settings.HUB_IMPORT_DIR, job.stored_name).exists()  # the upload is gone once done
    assert MailList.objects.get(name="another list").contact_count == 0

    # The same page in Chinese: every label, the title and the job's status are translated.
    d.add_cookie({"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans"})
    d.get(f"{base}/admin/contacts/importjob/{job.pk}/progress/")
    main = wait_for(d, "#content-main").text
    assert f"导入 #{job.pk}：客户名单.csv" in main
    for label in ("联系人分类", "行数", "已导入", "无效", "重复", "详情"):
        assert label in main, label
    assert text(d, "import-status") == "完成"
    assert "Import #" not in main and "duplicates" not in main
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-hans"
