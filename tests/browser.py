"""Helpers of the browser tests: Playwright driving Debian's Chromium, and the docs' screenshots.

The tests skip where `chromium` is not on PATH (`make browser` installs it: Debian's package,
since Playwright's own browser download is not available everywhere).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium under Playwright (sync API), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            launched.close()


def save_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """Screenshot the whole page into `tmp_path`; with `BROKERFLOW_UPDATE_SCREENSHOTS` set, also
    to `docs/img/{name}` (the picture the docs show)."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("BROKERFLOW_UPDATE_SCREENSHOTS"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)
    return path
