"""docs/webhooks.md's Python verification snippet works on a real signed request (so the
documentation cannot drift from the signer)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from django.conf import settings

from hub.webhooks import signing

DOC = Path(settings.BASE_DIR) / "docs" / "webhooks.md"


def test_the_documented_python_verifier_accepts_our_signature_and_refuses_replays():
    text = DOC.read_text(encoding="utf-8")
    snippet = re.search(r"Python:\n\n```python\n(.*?)```", text, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)  # noqa: S102  (the doc's own code, nothing else)
    verify = namespace["verify"]
    body = '{"events":[{"id":1,"type":"sent","email":"老王@example.com"}]}'.encode()
    headers = signing.headers("whsec_docs_secret_123", body, "d")
    assert verify("whsec_docs_secret_123", headers["X-Hub-Timestamp"], headers["X-Hub-Signature"], body)
    assert not verify("whsec_docs_secret_123", headers["X-Hub-Timestamp"], headers["X-Hub-Signature"], body + b"x")
    old = signing.headers("whsec_docs_secret_123", body, "d", now=time.time() - 301)
    assert not verify("whsec_docs_secret_123", old["X-Hub-Timestamp"], old["X-Hub-Signature"], body)
    assert "hash_equals" in text and "hash_hmac('sha256', $timestamp . '.' . $body, $secret)" in text
