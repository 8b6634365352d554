"""Fixtures the whole-system test modules share, registered here rather than imported by
each module, so a test's parameters name fixtures, not shadowed imports: the headless
browser (test_browser) and a running smtpd (test_smtpd)."""

from tests.test_browser import browser  # noqa: F401
from tests.test_smtpd import start_smtpd  # noqa: F401
