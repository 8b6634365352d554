"""The contacts domain's errors and its one tenancy-checked lookup, shared by the modules
of the app (services re-exports them: the APIs import them from there)."""

from __future__ import annotations

from hub.models import Account

from .models import MailList


class ContactError(Exception):
    """Bad input, refused before anything was written. `code` is a short identifier the
    APIs map to their own (V28 `<status>`), `message` a human-readable reason."""

    code = "error"

    def __init__(self, code: str | None = None, message: str = ""):
        self.code = code or self.code
        self.message = message or self.code
        super().__init__(self.message)


class NotFound(ContactError):
    code = "not_exist"

    def __init__(self, message: str = "not found"):
        super().__init__("not_exist", message)


def parse_id(value: int | str | None, what: str) -> int:
    """An id as the caller gave it; anything that is not a positive integer cannot name a
    row, so it is "not found" too (nothing to tell apart for a prober)."""
    try:
        pk = int(str(value).strip())
    except (TypeError, ValueError):
        raise NotFound(f"no such {what}") from None
    if pk <= 0 or pk >= 2**63:
        raise NotFound(f"no such {what}")
    return pk


def owned_list(account: Account, list_id: int | str) -> MailList:
    """The account's list with this id; NotFound for another account's or a missing one."""
    found = MailList.objects.filter(account=account, pk=parse_id(list_id, "list")).first()
    if found is None:
        raise NotFound("no such list")
    return found
