"""Fixtures of the inspector tests: a headless Chromium (module-scoped), journal paths."""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

HERE = pathlib.Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so tests (and `agent-kernel serve --agent inspector_kit:...`) import the kit

CHROMIUM = os.environ.get("INSPECTOR_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (started once per test module)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}): install Debian's package with `apt-get install -y chromium` "
            "(./dev test does it when run as root), or point INSPECTOR_CHROMIUM at a Chromium binary"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: `.venv/bin/pip install playwright` (no browser download needed)")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page (own cookies) for one test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "journal.db"


@pytest.fixture
def shots(tmp_path: pathlib.Path) -> pathlib.Path:
    """Where screenshots go: the plugin's docs/ with INSPECTOR_SCREENSHOTS=1, else a temporary directory."""
    if os.environ.get("INSPECTOR_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        return DOCS
    return tmp_path
