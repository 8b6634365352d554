"""Fixtures the whole-system test modules share: the headless browser (test_browser)."""

from tests.test_browser import browser  # noqa: F401
