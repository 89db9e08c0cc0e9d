"""The training playground of notebook 04b works in a real browser.

Opens notebooks/04b_temperature_playground.ipynb in JupyterLab in headless
Chromium (smoke profile, Fashion-MNIST), runs all cells, moves the playground's
T slider with the keyboard, presses Train and checks that exactly one try is
added to the table (with the chosen T), that the plot is redrawn and that the
Train button is disabled while it trains. Screenshots go to runs/browser/.

The widget's contract (what this test relies on), built by kd_utils.extras.playground's
Playground.show:
a VBox with class kd-playground holding SelectionSliders `T` and `alpha`, a Dropdown
`labels`, Buttons `Train` (kd-train) and `Clear` (kd-clear), an IntProgress
(kd-progress), an Image (kd-plot) and an HTML table (kd-tries) with one
<tr class="kd-try"> per try.

    make test-browser        (or: pytest tests/browser -m browser -s)
"""
import re
import time
from collections import Counter

import pytest

from .conftest import NOTEBOOKS, SHOTS, kernel_idle, run_all_cells, wait_kernel_idle

NOTEBOOK = "04b_temperature_playground.ipynb"
RUN_TIMEOUT = 600    # s for the cells before the playground (they may train a teacher)
TRAIN_TIMEOUT = 120  # s for one press of Train (a few seconds in the smoke profile)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (NOTEBOOKS / NOTEBOOK).exists(), reason=f"{NOTEBOOK} not written yet")]

# ipywidgets puts a widget's classes on its outermost element: for Button and Image
# that is the <button> / <img> itself, so accept both layouts.
IMAGE = "img.kd-plot, .kd-plot img"
TRAIN = "button.kd-train, .kd-train button"


@pytest.fixture
def notebook():
    return NOTEBOOK


def labelled(root, kind, description):
    """The widget of CSS class `kind` (e.g. widget-hslider) whose description is exactly `description`."""
    # A `has=` locator is matched inside each candidate, so it starts from the page.
    label = root.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$"))
    return root.locator(f".{kind}").filter(has=label).first


def contract_gaps(pg):
    """What the playground lacks of its contract, in words (empty when it has everything)."""
    wanted = {
        "SelectionSlider `T`": labelled(pg, "widget-hslider", "T"),
        "SelectionSlider `alpha`": labelled(pg, "widget-hslider", "alpha"),
        "Dropdown `labels`": labelled(pg, "widget-dropdown", "labels"),
        "Button `Train` with class kd-train": pg.locator(TRAIN).filter(has_text=re.compile(r"^\s*Train\s*$")),
        "Button `Clear` with class kd-clear": pg.locator("button.kd-clear, .kd-clear button").filter(
            has_text=re.compile(r"^\s*Clear\s*$")),
        "IntProgress with class kd-progress": pg.locator(".kd-progress.widget-hprogress, .kd-progress.widget-vprogress,"
                                                         " .kd-progress .progress"),
        "Image with class kd-plot": pg.locator(IMAGE),
        "HTML with class kd-tries": pg.locator(".kd-tries.widget-html, .kd-tries .widget-html-content"),
    }
    return [what for what, loc in wanted.items() if loc.count() == 0]


def tries_table(pg):
    """(header cells, one list of cell texts per tr.kd-try) of the kd-tries table."""
    return pg.locator(".kd-tries").first.evaluate("""el => [
        Array.from(el.querySelectorAll('th')).map(c => c.innerText.trim()),
        Array.from(el.querySelectorAll('tr.kd-try')).map(r => Array.from(r.cells).map(c => c.innerText.trim()))]""")


def same_value(text, value):
    try:
        return float(text) == float(value)
    except ValueError:
        return text.strip() == value.strip()


def shows_T(row, header, T):
    """Whether a try's row shows temperature T: in the column headed T (or temperature),
    else as "T = <value>" anywhere in the row."""
    cols = [i for i, h in enumerate(header) if re.match(r"^\s*(T|temperature)\b", h, re.IGNORECASE)]
    if cols:
        # A header row of n cells over rows of n cells; if the rows carry an extra leading
        # cell (a row header), count from the right.
        i = cols[0] if len(row) == len(header) else cols[0] - len(header) + len(row)
        return 0 <= i < len(row) and same_value(row[i], T)
    return re.search(rf"\bT\s*=\s*{re.escape(T)}(?![\d.])", " ".join(row)) is not None


def move_slider(page, slider):
    """Move a SelectionSlider one option with the keyboard (right, or left at the end);
    return its readout before and after."""
    readout = slider.locator(".widget-readout").first
    handle = slider.locator(".noUi-handle").first
    before = readout.inner_text().strip()
    now, top = (float(handle.get_attribute(a) or 0) for a in ("aria-valuenow", "aria-valuemax"))
    handle.focus()
    handle.press("ArrowRight" if now < top else "ArrowLeft")
    end = time.time() + 10
    while readout.inner_text().strip() == before and time.time() < end:
        time.sleep(0.1)
    return before, readout.inner_text().strip()


def wait_for_try(page, pg, n0, src0, timeout):
    """Wait until the table has more than n0 tries, the plot's src differs from src0, Train
    is enabled again and the kernel is idle, and all of it has held for 2 s; return the src."""
    img, train, idle = pg.locator(IMAGE).first, pg.locator(TRAIN).first, kernel_idle(page)
    end, last, since = time.time() + timeout, None, time.time()
    while time.time() < end:
        src = img.get_attribute("src")
        done = (pg.locator("tr.kd-try").count() > n0 and src and src != src0
                and train.is_enabled() and idle.is_visible())
        state = (src, pg.locator("tr.kd-try").count(), done)
        if state != last:
            last, since = state, time.time()
        elif done and time.time() - since >= 2.0:
            return src
        time.sleep(0.25)
    raise TimeoutError(f"within {timeout} s of pressing Train: tries {n0} -> {pg.locator('tr.kd-try').count()}, "
                       f"plot changed: {img.get_attribute('src') != src0}, Train enabled: {train.is_enabled()}, "
                       f"kernel idle: {idle.is_visible()}")


def test_train_adds_one_try_at_the_chosen_temperature(lab_page, jupyterlab):
    page, t0 = lab_page, time.time()
    page.goto(jupyterlab)
    run_all_cells(page)
    pg = page.locator(".kd-playground").first
    pg.wait_for(timeout=RUN_TIMEOUT * 1000)
    t_shown = time.time()
    wait_kernel_idle(page, timeout=RUN_TIMEOUT)
    pg.scroll_into_view_if_needed()
    gaps = contract_gaps(pg)
    assert not gaps, f"the playground lacks: {', '.join(gaps)}"

    header, rows0 = tries_table(pg)
    src0 = pg.locator(IMAGE).first.get_attribute("src")
    T_before, T = move_slider(page, labelled(pg, "widget-hslider", "T"))
    assert T != T_before, f"the T slider did not move with the keyboard (readout {T_before!r})"
    # Let the new T reach the kernel before the click: a slider's update can wait in
    # ipywidgets' throttle while a button click is sent at once.
    wait_kernel_idle(page, timeout=30, quiet=1.0)
    pg.screenshot(path=str(SHOTS / "playground-before-train.png"))

    train = pg.locator(TRAIN).first
    # Record whether Train is ever disabled, however briefly, without polling: a mutation
    # record with an old value means the attribute was there before that change.
    train.evaluate("""b => { window.kdTrainDisabled = b.disabled;
        new MutationObserver(records => {
            if (b.disabled || records.some(r => r.oldValue !== null)) window.kdTrainDisabled = true; })
            .observe(b, {attributes: true, attributeOldValue: true, attributeFilter: ['disabled']}); }""")
    assert train.is_enabled(), "Train is disabled before it was pressed"
    t_click = time.time()
    train.click()
    src1 = wait_for_try(page, pg, len(rows0), src0, TRAIN_TIMEOUT)
    t_train = time.time() - t_click
    pg.scroll_into_view_if_needed()
    pg.screenshot(path=str(SHOTS / "playground-after-train.png"))

    header, rows1 = tries_table(pg)
    assert len(rows1) == len(rows0) + 1, f"one press of Train made {len(rows1) - len(rows0)} tries: {rows1}"
    new = list((Counter(map(tuple, rows1)) - Counter(map(tuple, rows0))).elements())
    assert any(shows_T(row, header, T) for row in new), \
        f"no new row shows T = {T} (header {header}; new or changed rows {new})"
    assert src1 != src0
    assert page.evaluate("window.kdTrainDisabled") is True, "Train was never disabled while it trained"
    print(f"\n{NOTEBOOK}: playground after {t_shown - t0:.1f} s; T {T_before} -> {T}; tries {len(rows0)} -> "
          f"{len(rows1)}; one Train took {t_train:.1f} s (plot redrawn, Train disabled meanwhile); "
          f"browser part {time.time() - t0:.1f} s; screenshots in {SHOTS}")
