"""The whole course in a real browser: every notebook 00-08 in JupyterLab, and 05 and 06
as Voila apps (``./dev present``), driven by headless Debian Chromium through Playwright.

One JupyterLab server (on a temporary copy of ``notebooks/``) and one browser serve the
module; each notebook gets a fresh page and its kernel is shut down after it. For each
notebook, under ``DML_KIT_FAST=1``:

1. *Run > Run All Cells*; every code cell must run and no output may show a traceback
   (nor, checked at the end, a warning);
2. every cell's output is photographed (``test-artifacts/browser/course/NN/``, plus one
   picture of the whole notebook stitched from them, ``NN-run-all.png``);
3. **colours**: in every plotly figure, the visible class traces (marker-only scatter
   traces of one colour each: projections, prototype plots, ...) have pairwise distinct
   colours: CIE76 delta E >= ``MIN_DELTA_E`` between any two classes;
4. **images**: every image a figure draws in the page is the image the browser's copy of
   the figure holds; in widget figures it is one the kernel's FigureWidgets hold now (a
   stale image left by an earlier update fails); an image gallery (``layout.meta`` with
   ``mosaic_shape``) draws a PNG of that size, and a gallery with a dataset picker shows
   cells of that dataset's image size (TaskExplorer on ``glyphs``: 28 px, not 8 px);
5. **controls**: in every widget output that holds a plotly figure and controls, the
   controls are moved one after another (sliders by the keyboard, dropdowns, toggle
   buttons, buttons, the sketchpad's canvas by the mouse) until a figure of that output
   changes; one that none changes fails, and so does a panel that shows an error;
6. checks 3 and 4 again after the controls moved (a run started by a button draws new
   figures), then the **browser console**: no error and no page error (the ipywidgets
   manager's "widget model not found" included).

The Voila part starts ``./dev present 05`` and ``06`` with a token, waits until the app
has executed every cell, and checks: a request without the token is refused, widgets and
a figure with marks render, no code and no error shows, a control re-renders a figure,
the colour and image checks above, and a clean browser console. Screenshots go to the
same folder (``voila-NN-*.png``).

The module skips with the reason when Playwright, Chromium (or, for the Voila part,
Voila) is missing, as ``tests/test_browser.py`` does.
"""

from __future__ import annotations

import ast
import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import (
    ARTIFACTS,
    KERNEL_IMAGE_SOURCES,
    REPO,
    WIDGET_OUTPUT,
    LabServer,
    NotebookSession,
    VoilaApp,
    VoilaServer,
    browser_skip_reason,
    chromium_browser,
    class_colours,
    close_class_colours,
    console_errors,
    copy_notebooks,
    explained_failure,
    figure_images,
    kernel_expression,
    page_wait_until,
    png_size,
    root_signatures,
    running_lab,
    short_hash,
    shutdown_kernels,
    source_lines,
    voila_interact_slider,
    voila_interact_toggle,
    voila_skip_reason,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

SKIP_REASON = browser_skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

COURSE = [f"{i:02d}" for i in range(9)]
COURSE_ARTIFACTS = ARTIFACTS / "course"

RUN_TIMEOUT = 420.0     # seconds for Run All of one notebook under DML_KIT_FAST=1
RENDER_TIMEOUT = 90.0   # seconds for widgets and figures to show after the run
CONTROL_WAIT = 20.0     # seconds for a figure to follow a slider, dropdown or toggle
BUTTON_WAIT = 240.0     # seconds for what a button starts (a training run) to finish
SETTLE = 1.5            # seconds the kernel must stay idle before a control counts as inert
MIN_DELTA_E = 10.0      # CIE76: below about 10, two class colours read as shades of one
MAX_SHOT_HEIGHT = 3000  # pixels of one output photographed (taller ones are cut)

#: Image size (pixels) of the datasets a panel's dataset picker offers.
DATASET_IMAGE_PX = {"digits": 8, "glyphs": 28}
#: Pixels between the cells of an image gallery (``dml_kit.viz.figures.task_gallery``).
GALLERY_GAP = 2

#: Console lines that are not the course's doing, each with the reason it is ignored.
CONSOLE_IGNORE: tuple[str, ...] = ()
#: The same for the Voila page, which loads every installed JupyterLab extension:
VOILA_CONSOLE_IGNORE: tuple[str, ...] = (
    # Voila's page template also asks cdn.jsdelivr.net for Font Awesome's CSS, which the
    # test machines cannot reach; the buttons' icons still show offline (Voila's own
    # bundle carries the font: seen in the screenshots), the failed address is logged as
    # a [requestfailed] line
    "net::ERR_NAME_NOT_RESOLVED",
)

#: Toggle options a test does not pick: UMAP starts a numba compile in the background
#: (tens of CPU-seconds) and changes nothing until the next training frame.
SKIPPED_OPTIONS = ("umap",)

#: JavaScript: the class attribute of the panel-level widget of an output, for the log.
_WIDGET_KIND_JS = """
(root) => {
    const w = root.querySelector('.jupyter-widgets');
    return w ? Array.from(w.classList).filter((c) => c.startsWith('widget-')).join(' ') : '';
}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One JupyterLab for the module, on a temporary copy of notebooks/."""
    tmp = tmp_path_factory.mktemp("browser_course")
    root = copy_notebooks(REPO / "notebooks", tmp / "notebooks")
    with running_lab(root, tmp / "jupyter") as server:
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with chromium_browser() as browser:
        yield browser


def notebook_named(label: str) -> Path:
    """The course notebook ``notebooks/<label>_*.ipynb`` (skip when there is none)."""
    matches = sorted((REPO / "notebooks").glob(f"{label}_*.ipynb"))
    if not matches:
        pytest.skip(f"notebooks/{label}_*.ipynb does not exist")
    return matches[0]


# --- photographs ------------------------------------------------------------------------
def photograph_outputs(session: NotebookSession, folder: Path, tag: str) -> list[Path]:
    """A PNG of every cell output with a figure, widget or image in it (``folder/tag-NN``),
    and, stitched from them top to bottom, ``folder.parent/<folder name>-<tag>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    outputs = session.page.locator(".jp-Cell .jp-OutputArea-output")
    shots: list[Path] = []
    for i in range(outputs.count()):
        out = outputs.nth(i)
        try:
            if not out.locator(".js-plotly-plot, .jupyter-widgets, img, canvas, table").count():
                continue
            out.scroll_into_view_if_needed(timeout=5000)
            path = folder / f"{tag}-{i:02d}.png"
            box = out.bounding_box()
            if box and box["height"] > MAX_SHOT_HEIGHT:
                clip = {"x": box["x"], "y": box["y"], "width": box["width"],
                        "height": MAX_SHOT_HEIGHT}
                session.page.screenshot(path=str(path), clip=clip, full_page=True)
            else:
                out.screenshot(path=str(path), timeout=15000)
            shots.append(path)
        except Exception as exc:  # noqa: BLE001 - a detached output is fine to skip
            session.log(f"output {i}: no photograph ({type(exc).__name__})")
    if shots:
        stitched = folder.parent / f"{folder.name}-{tag}.png"
        _stitch(shots, stitched)
        session.shots.append(stitched)
        session.log(f"{len(shots)} output photographs; stitched: {stitched}")
    return shots


def _stitch(paths: list[Path], target: Path, gap: int = 12, max_height: int = 30000) -> None:
    """Stack images vertically on white (a whole notebook's outputs in one picture)."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    width = max(im.width for im in images)
    height = min(sum(im.height for im in images) + gap * len(images), max_height)
    sheet = Image.new("RGB", (width, height), "white")
    y = 0
    for im in images:
        if y >= height:
            break
        sheet.paste(im, (0, y))
        y += im.height + gap
    sheet.save(target)


# --- checks -----------------------------------------------------------------------------
def colour_problems(root: Locator, where: str) -> list[str]:
    """Figures whose visible classes have colours closer than ``MIN_DELTA_E``."""
    problems = []
    for i, fig in enumerate(class_colours(root)):
        if not fig["shown"] or len({t["group"] for t in fig["traces"]}) < 2:
            continue
        close = close_class_colours(fig["traces"], MIN_DELTA_E)
        if close:
            pairs = ", ".join(f"{a!r}/{b!r} dE {d}" for a, b, d in close[:6])
            problems.append(f"{where}: figure {i} ({fig['title'][:60]!r}, "
                            f"{len({t['group'] for t in fig['traces']})} classes): "
                            f"{len(close)} pair(s) of classes in near-identical colours: {pairs}")
    return problems


def image_problems(page: Page, where: str, kernel_sources: set[str] | None) -> list[str]:
    """Figures that draw an image other than the one they hold (browser) or the kernel
    holds (widget figures), galleries whose PNG does not match their ``mosaic_shape``,
    and galleries whose cells are not the size of the dataset their panel selects."""
    problems = []
    page_root = page.locator("body")
    for i, fig in enumerate(figure_images(page_root)):
        held = {short_hash(s) for s in fig["held"]}
        for j, href in enumerate(fig["drawn"]):
            if href and short_hash(href) not in held:
                problems.append(f"{where}: figure {i} ({fig['title'][:50]!r}) draws image {j} "
                                "that its figure data no longer holds (a stale image)")
        meta = fig["meta"] or {}
        shape = meta.get("mosaic_shape") if isinstance(meta, dict) else None
        if shape and fig["drawn"]:
            size = png_size(fig["drawn"][0])
            if size is not None and (size[1], size[0]) != (int(shape[0]), int(shape[1])):
                problems.append(f"{where}: figure {i} ({fig['title'][:50]!r}) draws a "
                                f"{size[0]}x{size[1]} image; its layout describes a "
                                f"{shape[1]}x{shape[0]} mosaic")
    if kernel_sources is None:
        return problems
    outputs = page.locator(WIDGET_OUTPUT)
    for k in range(outputs.count()):
        out = outputs.nth(k)
        figs = figure_images(out)
        for i, fig in enumerate(figs):
            for j, href in enumerate(fig["drawn"]):
                if href and short_hash(href) not in kernel_sources:
                    problems.append(f"{where}: widget output {k}, figure {i} "
                                    f"({fig['title'][:50]!r}) draws image {j}, which no "
                                    "FigureWidget in the kernel holds (stale image)")
        problems += _dataset_size_problems(out, figs, f"{where}: widget output {k}")
    return problems


def _dataset_size_problems(out: Locator, figs: list[dict[str, Any]], where: str) -> list[str]:
    """A gallery under a dataset picker must show that dataset's images (cell size)."""
    picks = out.locator(".widget-dropdown select")
    chosen = [str(picks.nth(i).evaluate("(s) => s.options[s.selectedIndex]"
                                        " ? s.options[s.selectedIndex].text : ''"))
              for i in range(picks.count())]
    dataset = next((c for c in chosen if c in DATASET_IMAGE_PX), None)
    if dataset is None:
        return []
    problems = []
    for i, fig in enumerate(figs):
        meta = fig["meta"] or {}
        if not (isinstance(meta, dict) and meta.get("n_way") and fig["drawn"]):
            continue
        size = png_size(fig["drawn"][0])
        if size is None:
            continue
        rows = int(meta["n_way"])
        cell = (size[1] - GALLERY_GAP * (rows - 1)) / rows
        if cell != DATASET_IMAGE_PX[dataset]:
            problems.append(f"{where}: figure {i} ({fig['title'][:50]!r}) shows {cell:g}-px "
                            f"images while the panel selects {dataset!r} "
                            f"({DATASET_IMAGE_PX[dataset]} px)")
    return problems


def kernel_image_sources(session: NotebookSession) -> set[str] | None:
    """The sha1 of every image the kernel's FigureWidgets hold now (None: not readable)."""
    raw = kernel_expression(session.page, KERNEL_IMAGE_SOURCES)
    if raw.startswith("ERROR"):
        session.log(f"kernel image sources not readable: {raw[:200]}")
        return None
    return set(json.loads(ast.literal_eval(raw)))


def warning_outputs(page: Page) -> list[str]:
    """Warnings printed into the notebook or app (stderr outputs that name a Warning): a
    reader sees them as red boxes (e.g. jupyter_client's "Message serialization failed")."""
    texts = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_inner_texts()
    return [" ".join(t.split())[:300] for t in texts if "Warning" in t]


def panel_errors(root: Locator) -> list[str]:
    """Texts of the panels' red status lines (``_Panel._guard`` writes errors there)."""
    texts = root.locator("div[style*='#b00020']").all_inner_texts()
    return [t.strip() for t in texts if t.strip()]


# --- moving controls --------------------------------------------------------------------
def _enabled_buttons(root: Locator) -> list[bool]:
    """Whether each button under ``root`` is enabled (panels disable theirs during a run)."""
    return [bool(b) for b in root.evaluate(
        "(r) => Array.from(r.querySelectorAll('button')).map((b) => !b.disabled)")]


def _settled_change(session: NotebookSession, root: Locator, before: list[str],
                    enabled: list[bool], timeout: float, settle: float = SETTLE) -> bool:
    """Whether a figure under ``root`` changed, once what the action started is over: the
    kernel idle, every button that was enabled before enabled again (a panel disables its
    button while it trains) and the figures unchanged for ``settle`` seconds (a live view
    stops drawing), at least two seconds after the action; or ``timeout`` seconds.
    ``before`` and ``enabled``: the signatures and buttons read before the action."""
    start = time.monotonic()
    last, stable_since = root_signatures(root), start
    while time.monotonic() - start < timeout:
        session.page.wait_for_timeout(250)
        now = time.monotonic()
        current = root_signatures(root)
        if current != last:
            last, stable_since = current, now
            continue
        running = any(was and not now_on for was, now_on in
                      zip(enabled, _enabled_buttons(root), strict=False))
        if running or session.kernel_status() != "idle":
            stable_since = now
            continue
        if now - start >= 2.0 and now - stable_since >= settle:
            break
    return root_signatures(root) != before


def _control_actions(out: Locator) -> list[tuple[str, Callable[[], str], float]]:
    """``(what, act, seconds to wait)`` for each enabled control of one widget output, in
    the order they are tried: sliders, dropdowns, toggle buttons, buttons, canvases."""
    actions: list[tuple[str, Callable[[], str], float]] = []
    handles = out.locator(".widget-slider .noUi-handle")
    for i in range(handles.count()):
        handle = handles.nth(i)
        slider = handle.locator("xpath=ancestor::div[contains(@class,'widget-slider')][1]")
        if slider.locator("[disabled]").count():
            continue
        actions.append((f"slider {i}", lambda h=handle, s=slider: _press_slider(h, s),
                        CONTROL_WAIT))
    selects = out.locator(".widget-dropdown select")
    for i in range(selects.count()):
        select = selects.nth(i)
        if select.is_disabled() or select.locator("option").count() < 2:
            continue
        actions.append((f"dropdown {i}", lambda s=select: _next_option(s), CONTROL_WAIT))
    groups = out.locator(".widget-toggle-buttons")
    for i in range(groups.count()):
        options = groups.nth(i).locator("button.widget-toggle-button:not(.mod-active)")
        for j in range(options.count()):
            option = options.nth(j)
            label = option.inner_text().strip()
            if option.is_disabled() or label.lower() in SKIPPED_OPTIONS:
                continue
            actions.append((f"toggle {i} -> {label!r}",
                            lambda o=option, t=label: _click(o, t),
                            CONTROL_WAIT))
            break
    buttons = out.locator("button.jupyter-button:not(.widget-toggle-button)")
    for i in range(buttons.count()):
        button = buttons.nth(i)
        if button.is_disabled():
            continue
        label = button.inner_text().strip() or f"button {i}"
        actions.append((f"button {label!r}",
                        lambda b=button, t=label: _click(b, t),
                        BUTTON_WAIT))
    canvases = out.locator("canvas.dml-sketch-canvas")
    for i in range(canvases.count()):
        canvas = canvases.nth(i)
        actions.append((f"sketch canvas {i}", lambda c=canvas: _draw_stroke(c), CONTROL_WAIT))
    return actions


def _click(button: Locator, label: str) -> str:
    if button.is_disabled():
        raise RuntimeError("disabled by an earlier change")
    button.click(timeout=10000)
    return f"clicked {label!r}"


def _press_slider(handle: Locator, slider: Locator) -> str:
    readout = slider.locator(".widget-readout")

    def value() -> str:
        if not readout.count():
            return ""
        el = readout.first
        tag = el.evaluate("(e) => e.tagName")
        return el.input_value() if tag in ("INPUT", "TEXTAREA") else el.inner_text()

    if slider.locator("[disabled]").count():
        raise RuntimeError("disabled by an earlier change")
    handle.scroll_into_view_if_needed(timeout=5000)
    before = value()
    handle.focus()
    handle.press("ArrowRight")
    if value() == before:
        handle.press("ArrowLeft")  # at its maximum: go the other way
        handle.press("ArrowLeft")
    return f"{before!r} -> {value()!r}"


def _next_option(select: Locator) -> str:
    if select.is_disabled():  # an earlier control disabled it (a method without a loss)
        raise RuntimeError("disabled by an earlier change")
    select.scroll_into_view_if_needed(timeout=5000)
    count = select.locator("option").count()
    current = int(select.evaluate("(s) => s.selectedIndex"))
    target = (current + 1) % count
    before = select.locator("option").nth(current).inner_text() if current >= 0 else ""
    select.select_option(index=target, timeout=10000)
    return f"{before!r} -> {select.locator('option').nth(target).inner_text()!r}"


def _draw_stroke(canvas: Locator) -> str:
    """A vertical bar with a foot, drawn with the mouse (a character on the sketchpad)."""
    canvas.scroll_into_view_if_needed(timeout=5000)
    box = canvas.bounding_box()
    assert box is not None, "the canvas has no box on the page"
    page = canvas.page
    for stroke in ([(0.5, 0.12), (0.5, 0.88)], [(0.3, 0.88), (0.7, 0.88)]):
        page.mouse.move(box["x"] + stroke[0][0] * box["width"],
                        box["y"] + stroke[0][1] * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + stroke[1][0] * box["width"],
                        box["y"] + stroke[1][1] * box["height"], steps=8)
        page.mouse.up()
        page.wait_for_timeout(300)
    return "drew a bar with a foot"


def move_controls(session: NotebookSession) -> tuple[list[str], list[str]]:
    """Per widget output with a figure and controls: try its controls until a figure of
    that output changes. Returns (problems, what happened per output)."""
    problems: list[str] = []
    report: list[str] = []
    outputs = session.page.locator(WIDGET_OUTPUT)
    for k in range(outputs.count()):
        out = outputs.nth(k)
        if not out.locator(".js-plotly-plot").count():
            continue
        kind = str(out.evaluate(_WIDGET_KIND_JS))
        actions = _control_actions(out)
        if not actions:
            report.append(f"widget output {k} ({kind}): figures, no control (a view)")
            continue
        out.scroll_into_view_if_needed(timeout=5000)
        session.wait_kernel_idle(120)
        tried = []
        for what, act, wait in actions:
            before, enabled = root_signatures(out), _enabled_buttons(out)
            try:
                detail = act()
            except Exception as exc:  # noqa: BLE001 - report and try the next control
                tried.append(f"{what}: could not act ({type(exc).__name__}: {exc})"[:200])
                continue
            changed = _settled_change(session, out, before, enabled, wait)
            tried.append(f"{what} {detail}: {'figure changed' if changed else 'no change'}")
            if changed:
                break
        else:
            problems.append(f"widget output {k} ({kind}): no control changed a figure; "
                            "tried " + "; ".join(tried))
        errors = panel_errors(out)
        if errors:
            problems.append(f"widget output {k} ({kind}) shows an error: {errors[:2]}")
        report.append(f"widget output {k} ({kind}): " + "; ".join(tried))
        session.log(report[-1])
    return problems, report


# --- the tests --------------------------------------------------------------------------
@pytest.mark.timeout(900)
@pytest.mark.parametrize("label", COURSE)
def test_course_notebook_in_jupyterlab(lab: LabServer, chromium: Browser, label: str) -> None:
    """Run All; no error output; photographs; distinct class colours; images that match
    the kernel and the dataset; every widget's controls move a figure; a clean console."""
    name = notebook_named(label).name
    if not (lab.root / name).exists():
        pytest.skip(f"{name} is not in the served copy")
    context = chromium.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    session = NotebookSession(page, lab, name, label=f"course-{label}")
    folder = COURSE_ARTIFACTS / label
    problems: list[str] = []
    t0 = time.monotonic()
    try:
        with explained_failure(session, name):
            session.open()
            ran = session.run_all(RUN_TIMEOUT)
            widgets, plots = session.wait_for_render(RENDER_TIMEOUT)
            session.log(f"widgets {widgets}; {len(plots)} plotly figures")
            blank = session.blank_figures()
            if blank:
                problems.append(f"visible figures {blank} rendered empty (no trace)")
            photograph_outputs(session, folder, "1-run-all")
            body = page.locator("body")
            problems += colour_problems(body, "after Run All")
            problems += image_problems(page, "after Run All", kernel_image_sources(session))

            moved, report = move_controls(session)
            problems += moved
            photograph_outputs(session, folder, "2-controls-moved")
            problems += colour_problems(body, "after the controls moved")
            problems += image_problems(page, "after the controls moved",
                                       kernel_image_sources(session))
            problems += [f"error output: {e[:400]}" for e in session.error_outputs()]
            problems += [f"warning shown in the notebook: {w}" for w in warning_outputs(page)]
            errors = console_errors(session.console, CONSOLE_IGNORE)
            problems += [f"browser console: {e[:300]}" for e in errors]
            session.log(f"Run All {ran:.0f} s; whole test {time.monotonic() - t0:.0f} s; "
                        f"{len(problems)} problem(s)")
            (folder / "report.txt").write_text(
                "\n".join([f"{name}: Run All {ran:.1f} s, test {time.monotonic() - t0:.1f} s",
                           *report, "--- problems ---", *problems,
                           "--- console ---", *session.console]) + "\n")
            assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
    finally:
        context.close()
        shutdown_kernels(lab)


#: (label, how to drive a control that makes the kernel redraw a figure)
VOILA_TARGETS = [("05", voila_interact_toggle), ("06", voila_interact_slider)]


@pytest.mark.skipif(voila_skip_reason() is not None, reason=voila_skip_reason() or "")
@pytest.mark.timeout(780)
@pytest.mark.parametrize("label,interact", VOILA_TARGETS, ids=[t[0] for t in VOILA_TARGETS])
def test_course_notebook_as_voila_app(chromium: Browser, tmp_path: Path, label: str,
                                      interact: Callable[[VoilaApp], str]) -> None:
    """``./dev present NN`` with a token: the app executes, renders widgets and a figure,
    shows no code and no error, follows a control; colours, images and console clean."""
    notebook = notebook_named(label)
    server = VoilaServer(notebook=label, home=tmp_path)
    context = chromium.new_context(viewport={"width": 1400, "height": 1400})
    app = VoilaApp(context.new_page(), server, label=f"voila-{label}",
                   artifacts=COURSE_ARTIFACTS)
    problems: list[str] = []
    try:
        with explained_failure(app, f"./dev present {label}"):
            server.start()
            no_token = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            no_token.request("GET", "/")
            answer = no_token.getresponse()
            assert answer.status == 302 and "/login" in (answer.getheader("Location") or ""), (
                f"without the token the app answered {answer.status}")
            no_token.close()
            start = time.monotonic()
            app.page.goto(server.url, wait_until="domcontentloaded", timeout=120_000)
            assert page_wait_until(app.page, app.executed, RUN_TIMEOUT, every=1.0), (
                f"Voila executed {app.cells_done[0]} of {app.cells_done[1]} cells in "
                f"{RUN_TIMEOUT:.0f} s")

            def rendered() -> bool:
                return bool(app.widget_counts()["widgets"]) and any(
                    map(app.has_marks, app.plot_stats()))

            assert page_wait_until(app.page, rendered, RENDER_TIMEOUT, every=1.0), (
                f"no widget + plot with marks: {app.widget_counts()}, {app.plot_stats()}")
            app.log(f"executed and rendered in {time.monotonic() - start:.1f} s; widgets "
                    f"{app.widget_counts()}; {len(app.plot_stats())} plotly figures")
            app.screenshot("1-rendered")
            problems += app.cell_errors + app.errors()
            text = app.text()
            shown = [line for line in source_lines(notebook) if line in text]
            if shown:
                problems.append(f"code is shown in the app: {shown[:3]}")
            inputs = app.page.locator(
                ".jp-CodeCell .jp-InputArea, .jp-InputArea-editor, .cm-editor, .CodeMirror")
            if inputs.count():
                problems.append(f"{inputs.count()} code input elements are shown")
            counts = app.widget_counts()
            if not counts["sliders"] + counts["dropdowns"] + counts["toggles"]:
                problems.append(f"the app shows no control: {counts}")
            # fast mode: a results store the app shows (its repr) lies outside the
            # repository's data/ (a note naming where a stored study would be is fine)
            if "ResultsStore(" in text and str(REPO / "data" / "results.sqlite") in text:
                problems.append("the app used the repository's results store under "
                                "DML_KIT_FAST=1")
            body = app.page.locator("body")
            problems += colour_problems(body, "Voila")
            problems += image_problems(app.page, "Voila", None)
            before = app.plot_signatures()
            app.log(interact(app))
            if not page_wait_until(app.page, lambda: app.plot_signatures() != before,
                                   CONTROL_WAIT * 3):
                problems.append("no plotly figure changed after the control moved")
            app.page.wait_for_timeout(1000)
            app.screenshot("2-after-control")
            problems += app.errors()
            problems += [f"warning shown in the app: {w}" for w in warning_outputs(app.page)]
            problems += [f"browser console: {e[:300]}"
                         for e in console_errors(app.console, VOILA_CONSOLE_IGNORE)]
            app.log("console: " + " | ".join(line[:160] for line in app.console
                                                if not line.startswith("[debug]")))
            assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
    finally:
        context.close()
        server.stop()
