"""Headless Chromium (Debian's package) driven by Playwright against the real server."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "ui"
# Chromium flags for a sandboxed CI box with no network: no first-run, background or update traffic.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield instance
        instance.close()


@contextmanager
def tab_on(browser, url: str, prepare: Callable = lambda _tab: None) -> Iterator:
    """A desktop-sized tab on ``url``, ``prepare``d before it loads (routes to intercept, say)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    tab = context.new_page()
    prepare(tab)
    tab.goto(url)
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def page(browser, server):
    with tab_on(browser, server + "/") as tab:
        yield tab
