"""A real headless browser for page tests: Debian's chromium driven by Selenium through Debian's chromedriver
(`make browser` installs both; Playwright's browser download cannot be reached here). Paths are given explicitly
and the flags are the ones chromium needs as root in a container.

    from browser import chrome, screenshot

    def test_page(tmp_path):
        with chrome() as driver:
            driver.get(url)
            screenshot(driver, "report")       # tests/artifacts/report.png

Screenshots are test artifacts: `tests/artifacts/<name>.png` (ignored by git; CI keeps the folder).
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BINARY = os.environ.get("TUNESTACK_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("TUNESTACK_CHROMEDRIVER", "/usr/bin/chromedriver")


def available() -> bool:
    return Path(BINARY).exists() and Path(DRIVER).exists() and shutil.which(DRIVER) is not None


needs_browser = pytest.mark.skipif(not available(), reason=f"no {BINARY} and {DRIVER}: run `make browser`")


@contextmanager
def chrome(width: int = 1280, height: int = 1600):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BINARY
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--disable-extensions", "--disable-background-networking",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str, full_page: bool = True) -> Path:
    """The page as a PNG in tests/artifacts/ (the whole page's height with `full_page`)."""
    ARTIFACTS.mkdir(exist_ok=True)
    if full_page:
        height = driver.execute_script("return Math.max(document.body.scrollHeight, "
                                       "document.documentElement.scrollHeight)")
        driver.set_window_size(driver.get_window_size()["width"], min(max(int(height) + 40, 400), 16000))
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def console_errors(driver) -> list[str]:
    """Severe messages in the page's console (a script that failed), where the driver exposes them."""
    try:
        return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    except Exception:  # noqa: BLE001 - not every driver keeps the browser log
        return []
