"""The campaign form's template and list pickers: the pick view offers only the named
account's templates (own and the manager's shared) or lists, filtered by name or id; the add
page carries a search box for each; nobody but an admin user gets options."""

from __future__ import annotations

from hub.contacts import services as contacts
from hub.mailtemplates import services as templates
from hub.tests.test_admin_support import body

from .conftest import HTML

URL = "/admin/campaigns/campaign/"


def results(su, kind: str, account, q: str = "") -> list[dict]:
    response = su.get(f"{URL}pick/{kind}/", {"account": account, "q": q})
    assert response.status_code == 200
    return response.json()["results"]


def test_pickers_offer_only_the_accounts_items(su, world, other):
    theirs = templates.create_template(other, name="别人的模板", subjects="s", html=HTML)
    their_list = contacts.create_list(other, "别人的列表")
    t1, t2 = world.templates
    assert [r["id"] for r in results(su, "templates", world.account.pk)] == [t2.pk, t1.pk]
    assert results(su, "templates", world.account.pk, "T1") == [{"id": t1.pk, "text": f"{t1.pk} · T1"}]
    assert [r["id"] for r in results(su, "templates", world.account.pk, str(t2.pk))] == [t2.pk]
    assert theirs.pk not in [r["id"] for r in results(su, "templates", world.account.pk, str(theirs.pk))]
    assert [r["id"] for r in results(su, "lists", world.account.pk)] == [m.pk for m in reversed(world.lists)]
    assert their_list.pk not in [r["id"] for r in results(su, "lists", world.account.pk, "")]
    assert [r["id"] for r in results(su, "lists", other.pk)] == [their_list.pk]
    assert results(su, "lists", "not-a-number") == [] and results(su, "lists", 999999) == []
    assert su.get(f"{URL}pick/contacts/", {"account": world.account.pk}).status_code == 404


def test_add_page_has_the_search_boxes_and_strangers_get_nothing(su, world, client):
    page = body(su.get(f"{URL}add/", {"account": world.account.pk}))
    assert 'id="id_templates_input_search"' in page and 'id="id_lists_input_options"' in page
    assert f'data-url="{URL}pick/templates/"' in page and f'data-account="{world.account.pk}"' in page
    response = client.get(f"{URL}pick/templates/", {"account": world.account.pk})
    assert response.status_code == 302 and "/login/" in response["Location"]  # the admin's login
