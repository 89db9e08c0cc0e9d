"""The real-browser tests need Chromium and Playwright's Python package, and
take a minute or two, so they run only when asked for: `pytest -m browser`
or KD_BROWSER_TESTS=1. Otherwise (the default `pytest tests`) they are skipped.
`make test-browser` installs both and runs them.

Shared here: the `jupyterlab` fixture (a throwaway JupyterLab serving a copy of
one notebook, smoke profile), the `lab_page` fixture (headless Chromium, Debian's
/usr/bin/chromium, no browser download, a screenshot in runs/browser/ when a
test fails) and the helpers the tests import (`run_all_cells`, `wait_kernel_idle`).
KD_BROWSER_NOTEBOOKS=<folder> takes the notebooks from another folder than notebooks/."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = Path(os.environ.get("KD_BROWSER_NOTEBOOKS") or ROOT / "notebooks")
SHOTS = ROOT / "runs" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No network, no sync, no updates: the browser talks only to our JupyterLab.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


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
    if not Path(CHROMIUM).exists():
        missing.append("Chromium (apt-get install chromium chromium-driver)")
    return "needs " + " and ".join(missing) + "; run `make test-browser`" if missing else None


def pytest_collection_modifyitems(config, items):
    reason = why_skip(config)
    if reason:
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so `lab_page` knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url, proc, timeout=90):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


@pytest.fixture
def jupyterlab(tmp_path, notebook):
    """JupyterLab on 127.0.0.1 with a token, in a throwaway HOME and config, serving a
    copy of `notebook` (the browser saves outputs into it; the repository's stays clean).
    The kernel inherits the smoke-profile KD_* settings and temporary runs/figures folders.
    `notebook` is a file name in notebooks/ (a test parameter or fixture)."""
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOKS / notebook, work / notebook)
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               MPLCONFIGDIR=str(home / "mpl"), KD_PROFILE="smoke", KD_DATASET="fashion-mnist",
               KD_FIGURES_DIR=str(tmp_path / "figures"), KD_RUNS_DIR=str(tmp_path / "runs"))
    # Render every cell (JupyterLab 4 otherwise skips off-screen ones) and skip the news prompt.
    settings = home / "settings"
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false"}')
    env.pop("MPLBACKEND", None)  # the notebook's %matplotlib inline decides
    port, token = free_port(), uuid.uuid4().hex
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           f"--LabApp.workspaces_dir={home / 'workspaces'}", f"--LabApp.user_settings_dir={settings}",
           "--LabApp.news_url=None", "--ServerApp.terminals_enabled=False",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI often run as root
    log_path = tmp_path / "jupyterlab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_server(f"{base}/api/status?token={token}", proc)
        except (RuntimeError, TimeoutError) as e:
            raise RuntimeError(f"{e}; its log ends with:\n{log_path.read_text()[-2000:]}") from None
        yield f"{base}/lab/tree/{notebook}?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def lab_page(jupyterlab, tmp_path, notebook, request):
    """A headless Chromium page (1400 x 1000, 60 s default timeout) on the JupyterLab
    of `jupyterlab`, not yet navigated: `page.goto(jupyterlab)`. If the test fails,
    runs/browser/<notebook stem>_failure.png is the whole page at that moment."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
            report = getattr(request.node, "rep_call", None)
            if report is None or report.failed:
                try:
                    page.screenshot(path=str(SHOTS / f"{Path(notebook).stem}_failure.png"), full_page=True)
                except Exception as e:  # the screenshot must not hide the real failure
                    print(f"\n(no failure screenshot: {e})")
        finally:
            context.close()


def kernel_idle(page):
    """The status bar item that reads "Python 3 (ipykernel) | Idle" once the kernel is idle."""
    return page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle")).first


def wait_kernel_idle(page, timeout=120, quiet=2.0):
    """Wait until the kernel has shown Idle for `quiet` seconds in a row (between the cells
    of Run All it is idle only for moments)."""
    end, since = time.time() + timeout, None
    while time.time() < end:
        if kernel_idle(page).is_visible():
            since = since or time.time()
            if time.time() - since >= quiet:
                return
        else:
            since = None
        time.sleep(0.25)
    raise TimeoutError(f"the kernel was not idle for {quiet} s within {timeout} s")


def run_all_cells(page):
    page.locator(".jp-Notebook").first.wait_for()
    # The status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected.
    kernel_idle(page).wait_for(timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first.click()
