"""The temperature sliders of notebooks 01 and 02 work in a real browser.

A headless kernel only proves the cells run; this opens each notebook in
JupyterLab in headless Chromium, runs all cells, drags the T slider and
checks that the plot is redrawn. Screenshots go to runs/browser/.
Notebook 02 trains a small teacher first (smoke profile, Fashion-MNIST).

    make test-browser        (or: pytest tests/browser -m browser -s)
"""
import re
import time
from pathlib import Path

import pytest

from .conftest import SHOTS, kernel_idle, run_all_cells

pytestmark = pytest.mark.browser

# Each notebook, and how long its cells may take before the slider shows up:
# 02 first trains a smoke-profile teacher, which is slow on a busy CPU.
CASES = [("01_softmax_temperature.ipynb", 120), ("02_teacher.ipynb", 600)]


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
    idle = kernel_idle(page)
    while time.time() < end:
        src = plot_src(box)
        if src != last:
            last, since = src, time.time()
        elif src != old_src and idle.is_visible() and time.time() - since >= quiet:
            return src
        time.sleep(0.5)
    raise TimeoutError(f"the plot did not change and settle within {timeout} s of moving the slider")


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
def test_moving_the_temperature_slider_redraws_the_plot(lab_page, jupyterlab, notebook, run_timeout):
    t0 = time.time()
    before, after = drive(lab_page, jupyterlab, Path(notebook).stem, run_timeout)
    (before_src, before_T), (after_src, after_T) = before, after
    assert after_T != before_T, f"the T readout did not move: {before_T!r} -> {after_T!r}"
    assert float(after_T) > float(before_T)
    assert after_src != before_src and after_src.startswith("data:image/png")
    print(f"\n{notebook}: T slider {before_T} -> {after_T}; plot redrawn; browser part took {time.time() - t0:.1f} s; "
          f"screenshots in {SHOTS}")
