"""Fixtures the whole-system test modules share, registered here rather than imported by
each module, so a test's parameters name fixtures, not shadowed imports."""

from tests.test_smtpd import start_smtpd  # noqa: F401
