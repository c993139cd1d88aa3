"""A real browser for the console tests: Debian's chromium, driven by Selenium.

The driver path is given explicitly, so Selenium Manager never downloads anything.
Without chromium the tests skip; with RECEIVER_REQUIRE_E2E=1 they fail.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, require_binary

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Where the screenshots go (git-ignored); the README names it.
SCREENSHOTS = Path(os.environ.get("RECEIVER_SCREENSHOTS", ROOT / "tests" / "screenshots"))
PHONE = (390, 844)
DESKTOP = (1280, 900)
ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)  # fmt: skip


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium with a fresh profile; its console log is readable."""
    require_binary(CHROMIUM)
    require_binary(CHROMEDRIVER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for a in ARGS:
        options.add_argument(a)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """The browser console's errors since the last call (the log is drained on read)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def unlabelled_fields(driver: Any) -> list[str]:
    """Form fields a screen reader could not name: no <label for>, no wrapping label."""
    script = """
    const out = [];
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden' || el.type === 'submit') continue;
      const byFor = el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]');
      if (!byFor && !el.closest('label') && !el.getAttribute('aria-label'))
        out.push(el.outerHTML.slice(0, 120));
    }
    for (const b of document.querySelectorAll('button'))
      if (!b.textContent.trim()) out.push(b.outerHTML.slice(0, 120));
    return out;
    """
    found: list[str] = driver.execute_script(script)
    return found


def screenshot(driver: Any, name: str) -> list[Path]:
    """The page at phone and desktop width, whole length, into SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = []
    for label, (width, height) in (("phone", PHONE), ("desktop", DESKTOP)):
        driver.set_window_size(width, height)
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, max(height, min(int(full), 6000)))
        path = SCREENSHOTS / f"{name}-{label}.png"
        assert driver.save_screenshot(str(path)) and path.stat().st_size > 0, path
        out.append(path)
    driver.set_window_size(*DESKTOP)
    return out
