"""The temperature sliders of notebooks 01 and 02 work in a real browser.

A headless kernel only proves the cells run; this opens each notebook in
JupyterLab in headless Chromium, runs all cells, drags the T slider and
checks that the plot is redrawn. Screenshots go to runs/browser/.
Notebook 02 trains a small teacher first (smoke profile, Fashion-MNIST).

    make test-browser        (or: pytest tests/browser -m browser -s)
"""
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

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
# Each notebook, and how long its cells may take before the slider shows up:
# 02 first trains a smoke-profile teacher, which is slow on a busy CPU.
CASES = [("01_softmax_temperature.ipynb", 120), ("02_teacher.ipynb", 600)]
SHOTS = ROOT / "runs" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No network, no sync, no updates: the browser talks only to our JupyterLab.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


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
    The kernel inherits the smoke-profile KD_* settings and temporary runs/figures folders."""
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


def temperature_slider(page):
    """The interact() box with a slider labelled T (the first such box), and that slider
    (notebook 02's box also has an image slider)."""
    label = page.locator(".widget-label", has_text=re.compile(r"^\s*T\s*$"))
    box = page.locator(".widget-interact").filter(has=label).first
    return box, box.locator(".widget-hslider").filter(has=label).first


def plot_src(box):
    img = box.locator(".widget-output img").first
    img.wait_for(state="visible", timeout=60_000)
    return img.get_attribute("src")


def settled_plot(page, box, old_src, timeout=90, quiet=3.0):
    end, last, since = time.time() + timeout, None, time.time()
    idle = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle")).first
    while time.time() < end:
        src = plot_src(box)
        if src != last:
            last, since = src, time.time()
        elif src != old_src and idle.is_visible() and time.time() - since >= quiet:
            return src
        time.sleep(0.5)
    raise TimeoutError(f"the plot did not change and settle within {timeout} s of moving the slider")


def run_all_cells(page):
    page.locator(".jp-Notebook").first.wait_for()
    # The status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected.
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle")).first.wait_for(timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first.click()


def drive(page, url, name, run_timeout):
    """Open and run the notebook, drag the T slider; return (plot, T readout) before and after.
    Screenshots are runs/browser/<name>_*.png."""
    page.goto(url)
    run_all_cells(page)
    box, slider = temperature_slider(page)
    box.wait_for(timeout=run_timeout * 1000)
    box.scroll_into_view_if_needed()
    readout = slider.locator(".widget-readout").first
    before = plot_src(box), readout.inner_text()
    box.screenshot(path=str(SHOTS / f"{name}_slider_before.png"))

    # Drag the T handle most of the way to the right (towards T = 100).
    handle = slider.locator(".noUi-handle").first
    track = slider.locator(".noUi-target, .slider").first.bounding_box()
    h = handle.bounding_box()
    page.mouse.move(h["x"] + h["width"] / 2, h["y"] + h["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + 0.9 * track["width"], h["y"] + h["height"] / 2, steps=10)
    page.mouse.up()

    # The kernel redraws once per slider event (continuous_update): wait until the
    # image differs from the first one, the kernel is idle, and the image has settled.
    after = settled_plot(page, box, before[0], timeout=run_timeout)
    after = after, readout.inner_text()
    box.screenshot(path=str(SHOTS / f"{name}_slider_after.png"))
    page.screenshot(path=str(SHOTS / f"{name}_jupyterlab_after.png"))
    return before, after


@pytest.mark.parametrize("notebook, run_timeout", CASES, ids=[c[0][:2] for c in CASES])
def test_moving_the_temperature_slider_redraws_the_plot(jupyterlab, tmp_path, notebook, run_timeout):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            try:
                before, after = drive(page, jupyterlab, Path(notebook).stem, run_timeout)
            except Exception:
                page.screenshot(path=str(SHOTS / f"{Path(notebook).stem}_failure.png"), full_page=True)
                raise
        finally:
            context.close()

    (before_src, before_T), (after_src, after_T) = before, after
    assert after_T != before_T, f"the T readout did not move: {before_T!r} -> {after_T!r}"
    assert float(after_T) > float(before_T)
    assert after_src != before_src and after_src.startswith("data:image/png")
    print(f"\n{notebook}: T slider {before_T} -> {after_T}; plot redrawn; browser part took {time.time() - t0:.1f} s; "
          f"screenshots in {SHOTS}")
