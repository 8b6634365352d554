"""The back office in a real browser (Debian's headless Chromium through Selenium and
chromium-driver) against the live server: log in, add an SMTP server pointing at an
in-process SMTP sink, add an app (its secret shown once), send a test email, find it in
the logs as sent, open the sandboxed preview, switch the language. Saves screenshots;
with HUB_SCREENSHOT_DIR=docs/screenshots, the ones the README links."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from hub.models import App, SendLog, SmtpServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# The README's screenshots are refreshed on request only (HUB_SCREENSHOT_DIR=docs/screenshots);
# an ordinary test run must not rewrite tracked files.
SHOTS = Path(os.environ.get("HUB_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "smtphub-screenshots").resolve()
WAIT = 15  # seconds, for any one thing to appear

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="needs Debian's chromium and chromium-driver"),
]

# A body that tries to run a script and to load a remote image: the preview must do neither.
HOSTILE_BODY = ('<h1 id="hello">Hello from the browser test</h1>'
                '<script>document.body.setAttribute("data-pwned", "1")</script>'
                '<img id="remote" src="http://127.0.0.1:9/pixel.gif" alt="remote">')


def has_cjk_font() -> bool:
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return False
    found = subprocess.run([fc_list, ":lang=zh"], check=False, capture_output=True, text=True, timeout=30)
    return bool(found.stdout.strip())


def seed_history(app: App, server: SmtpServer) -> None:
    """Deterministic traffic of the last 14 days for a second app and the given one."""
    from datetime import timedelta

    from django.utils import timezone

    other = App(name="Newsletter")
    other.rotate_secret()
    other.save()
    now = timezone.now()
    rows = []
    for day in range(1, 15):
        for i in range(3 + (day * 7) % 11):
            owner = app if i % 3 else other
            status = "failed" if i % 9 == 4 else "sent"
            created = now - timedelta(days=day, minutes=37 * i)
            rows.append(SendLog(app=owner, smtp_server=server, to=f"customer{day}{i}@example.com",
                                subject=f"Order #{10000 + day * 100 + i} confirmed" if owner == app
                                else f"Weekly digest {day}", html_body="<p>…</p>", status=status,
                                smtp_code=250 if status == "sent" else 550,
                                smtp_reply="2.0.0 Ok: queued" if status == "sent" else "5.1.1 User unknown",
                                created_at=created, sent_at=created if status == "sent" else None, attempts=1))
    today = timezone.localtime(now).replace(hour=0, minute=1)
    rows.append(SendLog(app=other, to="slow@example.com", subject="Weekly digest", html_body="<p>…</p>",
                        status="retrying", error="421 4.7.0 Try again later", created_at=today, attempts=2))
    rows.append(SendLog(app=app, smtp_server=server, to="typo@exmaple.com", subject="Order #10999 confirmed",
                        html_body="<p>…</p>", status="failed", smtp_code=550, created_at=today, attempts=1,
                        smtp_reply="5.1.1 User unknown"))
    SendLog.objects.bulk_create(sorted(rows, key=lambda r: r.created_at))  # ids grow with time


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1440,900", "--lang=en-US"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, css: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))
    except Exception:
        Path("/tmp/browser_fail.html").write_text(driver.page_source)
        driver.save_screenshot("/tmp/browser_fail.png")
        print("LOGS", driver.get_log("browser"))
        raise


def wait_text(driver, css: str, text: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return driver.find_element(By.CSS_SELECTOR, css)


def fill(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def select(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.NAME, name)).select_by_value(value)


def click(driver, css: str) -> None:
    element = wait_for(driver, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    driver.execute_script("arguments[0].click();", element)


def full_page_screenshot(driver, path: Path) -> None:
    """The whole page: the admin scrolls inside its own panes, so size the window to the
    bottom of the content rather than relying on the document's scroll height."""
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(1440, 2400)
    bottom = driver.execute_script("return document.getElementById('content').getBoundingClientRect().bottom")
    driver.set_window_size(1440, int(min(max(bottom + 160, 900), 2400)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1440, 900)


def test_back_office_end_to_end(live_server, browser, smtp_sink_factory):
    from selenium.webdriver.common.by import By

    sink = smtp_sink_factory("plain", username="mailer", password="sink-pass")
    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    base = live_server.url
    d = browser

    # Log in.
    d.get(f"{base}/admin/login/")
    fill(d, "username", "admin")
    fill(d, "password", "a-long-test-password")
    click(d, "button[type=submit]")
    wait_for(d, "#hub-dashboard")

    # Add an SMTP server pointing at the sink, then test the connection.
    d.get(f"{base}/admin/hub/smtpserver/add/")
    fill(d, "name", "sink")
    fill(d, "host", sink.host)
    fill(d, "port", str(sink.port))
    select(d, "security", "none")
    fill(d, "username", "mailer")
    fill(d, "password", "sink-pass")
    fill(d, "from_email", "noreply@example.com")
    fill(d, "timeout", "5")
    click(d, "button[name=_continue]")
    wait_text(d, "#main", "was added successfully")
    server = SmtpServer.objects.get()
    assert server.get_password() == "sink-pass"
    assert "sink-pass" not in d.page_source and server.password_encrypted not in d.page_source
    click(d, f"a[href='/admin/hub/smtpserver/{server.pk}/test-connection/']")
    click(d, "#hub-action-form button[type=submit]")
    wait_text(d, "#hub-outcome", "The server answered")
    assert "accepted for mailer" in d.find_element(By.ID, "hub-outcome").text

    # Add an app with that server; the secret is shown once.
    d.get(f"{base}/admin/hub/app/add/")
    fill(d, "name", "Browser shop")
    click(d, "#server_links-group .add-row a, #server_links-group a.add-row")
    wait_for(d, "select[name='server_links-0-server']")
    select(d, "server_links-0-server", str(server.pk))
    click(d, "button[name=_continue]")
    secret = wait_for(d, "#hub-new-secret").text.strip()
    app = App.objects.get()
    assert len(secret) >= 30 and app.check_secret(secret)
    assert [s.pk for s in app.ordered_servers()] == [server.pk]
    d.refresh()
    wait_for(d, "#hub-integration")
    assert secret not in d.page_source
    assert f"appid={app.pk}" in d.find_element(By.ID, "hub-snippet-curl").text

    # Send a test email through the pipeline.
    click(d, f"a[href='/admin/hub/app/{app.pk}/send-test/']")
    fill(d, "to", "reader@example.com")
    fill(d, "subject", "Browser test")
    fill(d, "message", HOSTILE_BODY)
    click(d, "#hub-action-form button[type=submit]")
    wait_text(d, "#hub-outcome", "Sent")
    row = SendLog.objects.get()
    assert row.status == "sent" and len(sink.messages) == 1
    assert sink.messages[0].message["Subject"] == "Browser test"

    # The logs list shows it as sent.
    d.get(f"{base}/admin/hub/sendlog/")
    cell = wait_for(d, "#result_list")
    assert "reader@example.com" in cell.text and "SENT" in cell.text.upper()

    # Open it; the preview renders the HTML without running its script.
    d.get(f"{base}/admin/hub/sendlog/{row.pk}/change/")
    frame = wait_for(d, "#hub-preview")
    assert frame.get_attribute("sandbox") == ""
    d.switch_to.frame(frame)
    assert wait_for(d, "#hello").text == "Hello from the browser test"
    assert d.find_element(By.TAG_NAME, "body").get_attribute("data-pwned") is None
    remote = d.find_element(By.ID, "remote")
    assert d.execute_script("return arguments[0].naturalWidth", remote) == 0  # blocked by the CSP
    d.switch_to.default_content()

    # The dashboard counts it.
    d.get(f"{base}/admin/")
    assert wait_for(d, "#hub-sent-today").text == "1"
    wait_for(d, "#hub-chart canvas")

    # Two weeks of history, so the screenshots show what a working hub looks like.
    seed_history(app, server)
    d.get(f"{base}/admin/hub/sendlog/")
    wait_for(d, "#result_list")
    d.save_screenshot(str(SHOTS / "send-logs.png"))  # the first screenful of a long list
    d.get(f"{base}/admin/")
    assert wait_for(d, "#hub-sent-today").text == "1"  # the history is all before today, or not sent
    wait_for(d, "#hub-chart canvas")
    full_page_screenshot(d, SHOTS / "dashboard.png")

    # Switch the language from the user menu: the admin answers in Chinese from then on.
    click(d, "form[action='/i18n/setlang/'] input[value='zh-hans'] ~ button")
    wait_text(d, "#hub-dashboard", "今日已发送")
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-hans"
    if has_cjk_font():  # without one the picture would be boxes; keep the committed one
        full_page_screenshot(d, SHOTS / "dashboard-zh.png")
