"""The template check (V28 5.3, codes (a)9): what a template would look like to receivers
and spam filters, as findings with a level, and the colour they add up to.

Rules (docs/templates.md lists them too):
- red (the template is refused, `status` 0): `<script>`, `on*=` event attributes or
  `javascript:` URLs; `<form>`; `<iframe>`/`<frame>`/`<object>`/`<embed>`; a broken
  placeholder (unknown name, or `{{` left unclosed) in a subject, the HTML or the text;
  no `{{unsubscribe_url}}` in the HTML.
- yellow (sent, with a warning): HTML over 102 KB (Gmail clips the message); an `<img>`
  without `alt`; image-heavy and text-light (images but fewer than 300 characters of text,
  or fewer than 100 characters per image); more than HUB_TEMPLATE_MAX_LINKS links; a risky
  phrase (RiskyPhrase, edited in the admin) in a subject or the visible text.
- green: none of these.
An operator may pass a red template (`red_pass`, services.red_pass); the next change checks
it again.

The HTML is walked with the stdlib's html.parser (a tokenizer: no regex over HTML). The size
is that of the real MIME message (mime.build_message) for a sample contact, in KB rounded
up."""

from __future__ import annotations

import math
from html.parser import HTMLParser

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from .mime import build_message
from .models import RiskyPhrase, Template
from .personalize import SAMPLE_CONTACT, broken_placeholders, placeholders, render

GMAIL_CLIP_BYTES = 102 * 1024
MIN_TEXT_CHARS = 300
TEXT_PER_IMAGE = 100
RED, YELLOW = "red", "yellow"
_FRAMES = {"iframe", "frame", "frameset", "object", "embed", "applet"}
_URL_ATTRS = {"href", "src", "action", "formaction", "background", "xlink:href"}

# Messages are stored untranslated (gettext_noop) and translated when shown.
MESSAGES = {
    "script": gettext_noop("Scripts are removed or blocked by mail clients and mark the mail as dangerous."),
    "form": gettext_noop("Forms do not work in most mail clients and look like phishing."),
    "frame": gettext_noop("Frames and embedded objects are blocked by mail clients."),
    "broken_placeholder": gettext_noop("Broken placeholder: not a known field, or not closed."),
    "no_unsubscribe": gettext_noop("The HTML has no {{unsubscribe_url}} link."),
    "gmail_clip": gettext_noop("The HTML is over 102 KB: Gmail clips the message."),
    "img_no_alt": gettext_noop("Images without alt text."),
    "image_heavy": gettext_noop("Many images and little text: spam filters score such mails."),
    "many_links": gettext_noop("Many links."),
    "risky_phrase": gettext_noop("A phrase spam filters score."),
}


def finding(code: str, level: str, detail: str = "") -> dict:
    return {"code": code, "level": level, "message": MESSAGES[code], "detail": detail[:300]}


class _Walker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: dict[str, int] = {}
        self.event_attrs: list[str] = []
        self.js_urls = 0
        self.images = 0
        self.images_without_alt = 0
        self.links = 0
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        names = {name.lower(): (value or "") for name, value in attrs}
        self.event_attrs += [n for n in names if n.startswith("on")]
        self.js_urls += sum(1 for n, v in names.items() if n in _URL_ATTRS
                            and "".join(v.split()).lower().startswith(("javascript:", "vbscript:")))
        if tag == "img":
            self.images += 1
            if not names.get("alt", "").strip():
                self.images_without_alt += 1
        elif tag == "a" and names.get("href"):
            self.links += 1
        if tag in ("script", "style", "head", "title"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _walk(html: str) -> _Walker:
    walker = _Walker()
    walker.feed(html)
    walker.close()
    return walker


def _phrases() -> list[str]:
    return list(RiskyPhrase.objects.filter(enabled=True).values_list("phrase", flat=True))


def content_findings(subjects: list[str], html: str, text: str, phrases: list[str] | None = None) -> list[dict]:
    """Every finding about the content, red ones first."""
    found: list[dict] = []
    w = _walk(html)
    if w.tags.get("script") or w.event_attrs or w.js_urls:
        detail = ", ".join(filter(None, ["<script>" if w.tags.get("script") else "",
                                         " ".join(sorted(set(w.event_attrs))[:5]),
                                         "javascript:" if w.js_urls else ""]))
        found.append(finding("script", RED, detail))
    if w.tags.get("form"):
        found.append(finding("form", RED, "<form>"))
    frames = sorted(t for t in w.tags if t in _FRAMES)
    if frames:
        found.append(finding("frame", RED, ", ".join(f"<{t}>" for t in frames)))
    broken = [p for source in (*subjects, html, text) for p in broken_placeholders(source)]
    if broken:
        found.append(finding("broken_placeholder", RED, " ".join(dict.fromkeys(broken))))
    if "unsubscribe_url" not in {name for name, _default in placeholders(html)}:
        found.append(finding("no_unsubscribe", RED))
    size = len(html.encode("utf-8", "surrogatepass"))  # (the APIs refuse lone surrogates; a caller may not)
    if size > GMAIL_CLIP_BYTES:
        found.append(finding("gmail_clip", YELLOW, f"{math.ceil(size / 1024)} KB"))
    if w.images_without_alt:
        found.append(finding("img_no_alt", YELLOW, str(w.images_without_alt)))
    visible = "".join("".join(w.text).split())
    if w.images and (len(visible) < MIN_TEXT_CHARS or len(visible) < TEXT_PER_IMAGE * w.images):
        found.append(finding("image_heavy", YELLOW, f"{w.images} / {len(visible)}"))
    if w.links > settings.HUB_TEMPLATE_MAX_LINKS:
        found.append(finding("many_links", YELLOW, str(w.links)))
    haystack = " ".join([*subjects, " ".join(w.text)]).lower()
    hits = [p for p in (phrases if phrases is not None else _phrases()) if p.lower() in haystack]
    if hits:
        found.append(finding("risky_phrase", YELLOW, ", ".join(hits[:20])))
    return found


def colour_of(findings: list[dict]) -> str:
    levels = {f["level"] for f in findings}
    return Template.Colour.RED if RED in levels else Template.Colour.YELLOW if YELLOW in levels \
        else Template.Colour.GREEN


def message_size_kb(template: Template) -> int:
    """The real MIME message for a sample contact (links of a realistic length), in KB."""
    links = {"unsubscribe_url": "https://mail.example.com/unsubscribe/" + "x" * 60 + "/",
             "webview_url": "https://mail.example.com/view/" + "x" * 80 + "/"}
    rendered = render(template, SAMPLE_CONTACT, links)
    raw = build_message(template, rendered, sender="sender@example.com", from_name="Sender",
                        to=SAMPLE_CONTACT["email"])
    return math.ceil(len(raw) / 1024)


def run_check(template_id: int, revision: int) -> str:
    """Check one revision of a template and store the result, unless the template changed
    meanwhile (a newer check is queued) or is gone. Returns the colour, or "stale"."""
    template = Template.objects.filter(pk=template_id, revision=revision).first()
    if template is None:
        return "stale"
    findings = content_findings(list(template.subjects), template.html, template.text)
    colour = colour_of(findings)
    size_kb = message_size_kb(template)
    status = Template.CheckStatus.REFUSED if colour == Template.Colour.RED else Template.CheckStatus.PASSED
    with transaction.atomic():
        written = Template.objects.filter(pk=template_id, revision=revision).update(
            findings=findings, colour=colour, check_status=status, size_kb=size_kb, size_status=1,
            checked_at=timezone.now(), red_pass_by="")
    return colour if written else "stale"
