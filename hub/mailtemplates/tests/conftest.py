"""Fixtures of the templates tests: two accounts (tenancy), a manager with a sub-account
(sharing), a template, and a helper that runs the check the way the queue would."""

from __future__ import annotations

import pytest

from hub.mailtemplates import services
from hub.mailtemplates.check import run_check
from hub.mailtemplates.models import Template

GOOD_HTML = ('<html><body><h1>你好 {{fullname|朋友}}</h1><p>' + "本月新品上架，欢迎选购。" * 40 +
             '</p><p><a href="https://shop.example.com/">商店</a> · <a href="{{webview_url}}">在浏览器中查看</a> · '
             '<a href="{{unsubscribe_url}}">退订</a></p></body></html>')




@pytest.fixture
def template(account) -> Template:
    return services.create_template(account, name="月刊", subjects="你好 {{fullname|朋友}}|十一月新品", html=GOOD_HTML)


def checked(template: Template) -> Template:
    """Run the check of the template's current revision and reload it."""
    template.refresh_from_db()
    run_check(template.pk, template.revision)
    template.refresh_from_db()
    return template
