"""Fixtures the core's test modules share: the admin's staff clients and cache reset (test_admin_support)
scripted SMTP servers (test_retry), every write smtplib makes (test_pipelining), and direct delivery's DNS-and-sinks world (direct_world). Registered here rather than imported by each module,
so a test's parameters name fixtures, not shadowed imports."""

from hub.tests.direct_world import world  # noqa: F401
from hub.tests.test_admin_support import fresh_cache, staff_factory  # noqa: F401
from hub.tests.test_pipelining import writes  # noqa: F401
from hub.tests.test_retry import scripted_smtp  # noqa: F401
