"""The campaign form's template and list pickers (admin): a search box beside each id field
that offers the campaign's account's own templates (and its manager's shared ones) or
contact lists, and adds the chosen id to the field. The ids field stays the value the form
checks (services.check_fields), so a picker can only help, never widen what is allowed:
whatever is typed or picked, another account's id is refused there."""

from __future__ import annotations

import json

from django import forms
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from hub.contacts.models import MailList
from hub.mailtemplates.models import Template
from hub.mailtemplates.services import usable_filter
from hub.models import Account

KINDS = ("templates", "lists")
LIMIT = 20
MAX_QUERY = 100


def options(account_id: str | int | None, kind: str, query: str) -> list[dict]:
    """Up to LIMIT {"id", "text"} of the account's templates or lists whose name (or id)
    matches `query`, newest first; [] for an unknown account."""
    try:
        account = Account.objects.filter(pk=int(account_id or 0)).first()
    except (TypeError, ValueError):
        account = None
    if account is None or kind not in KINDS:
        return []
    query = (query or "").strip()[:MAX_QUERY]
    if kind == "templates":
        rows = Template.objects.filter(usable_filter(account))
    else:
        rows = MailList.objects.filter(account=account)
    if query:
        match = Q(name__icontains=query)
        if query.isdigit() and len(query) < 19:
            match |= Q(pk=int(query))
        rows = rows.filter(match)
    found = rows.order_by("-pk").values_list("pk", "name")[:LIMIT]
    return [{"id": pk, "text": f"{pk} · {name}"} for pk, name in found]


_SCRIPT = """
(function () {
  var box = document.getElementById(%(box)s), ids = document.getElementById(%(ids)s);
  var list = document.getElementById(%(list)s), account = document.getElementById("id_account");
  if (!box || !ids) return;
  var timer = null;
  function accountId() { return account ? account.value : box.dataset.account; }
  function load() {
    var url = box.dataset.url + "?account=" + encodeURIComponent(accountId() || "") + "&q=" +
      encodeURIComponent(box.value);
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (data) {
      list.replaceChildren();
      (data.results || []).forEach(function (o) {
        var opt = document.createElement("option"); opt.value = o.text; list.appendChild(opt);
      });
    });
  }
  box.addEventListener("input", function () {
    var m = /^(\\d+) · /.exec(box.value);
    if (m) {
      var have = ids.value.split(/[\\s,]+/).filter(Boolean);
      if (have.indexOf(m[1]) < 0) have.push(m[1]);
      ids.value = have.join(","); box.value = ""; return;
    }
    clearTimeout(timer); timer = setTimeout(load, 250);
  });
  box.addEventListener("focus", load);
})();
"""


class IdPicker(forms.TextInput):
    """The ids text input plus a search box with the account's matching items (a datalist
    filled from CampaignAdmin's pick view); choosing one appends its id."""

    def __init__(self, kind: str, attrs: dict | None = None) -> None:
        super().__init__(attrs)
        self.kind = kind
        self.account_id: int | None = None

    def render(self, name, value, attrs=None, renderer=None):
        field = super().render(name, value, attrs, renderer)
        ids_id = (attrs or {}).get("id") or f"id_{name}"
        box_id, list_id = f"{ids_id}_search", f"{ids_id}_options"
        script = _SCRIPT % {"box": json.dumps(box_id), "ids": json.dumps(ids_id), "list": json.dumps(list_id)}
        placeholder = _("Search the account's templates") if self.kind == "templates" else _(
            "Search the account's contact lists")
        return format_html(
            '{}<div style="margin-top:4px"><input type="search" id="{}" list="{}" placeholder="{}" autocomplete="off" '
            'data-url="{}" data-account="{}" class="border rounded-md px-3 py-2 text-sm w-full max-w-2xl">'
            '<datalist id="{}"></datalist></div><script>{}</script>',
            field, box_id, list_id, placeholder, reverse("admin:campaigns_campaign_pick", args=[self.kind]),
            # Only constants and json.dumps()'d element ids (made from the field's name) go in.
            self.account_id or "", list_id, mark_safe(script))
