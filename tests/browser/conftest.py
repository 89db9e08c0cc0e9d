"""The real-browser test needs Chromium and Playwright's Python package, and
takes a minute or two, so it runs only when asked for: `pytest -m browser`
or KD_BROWSER_TESTS=1. Otherwise (the default `pytest tests`) it is skipped.
`make test-browser` installs both and runs it."""
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in headless Chromium (make test-browser)")


def why_skip(config):
    marks = config.getoption("-m") or ""
    if not (("browser" in marks and "not browser" not in marks) or os.environ.get("KD_BROWSER_TESTS") == "1"):
        return "real-browser test: run `make test-browser` or `pytest -m browser`"
    missing = []
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install playwright)")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        missing.append("Chromium (apt-get install chromium chromium-driver)")
    return "needs " + " and ".join(missing) + "; run `make test-browser`" if missing else None


def pytest_collection_modifyitems(config, items):
    reason = why_skip(config)
    if reason:
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
