"""Save any figure the kit builds: ``save_figure(fig, "norms.html")``.

Every figure builder returns a plotly figure (``go.Figure`` or ``go.FigureWidget``), so one
function saves them all:

* ``.html``: a self-contained page (plotly.js embedded, so it opens offline), interactive:
  hover, zoom and the modebar work as in the notebook. Always available.
* ``.json``: the figure's data and layout (``plotly.io.read_json`` reads it back).
* ``.png``, ``.svg``, ``.pdf``, ``.jpg``, ``.webp``: a static image. plotly renders these
  with the optional ``kaleido`` package, which drives a Chrome/Chromium browser; when it is
  missing the error says so. Without it, the camera button of the figure's modebar (top
  right, "Download plot as a png") saves the PNG from the browser.

Files are written atomically (:func:`dml_kit.data.paths.atomic_write`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from dml_kit.data.paths import atomic_write

#: suffixes saved as interactive or data files (no extra package)
TEXT_FORMATS = (".html", ".json")
#: suffixes saved as static images (need ``kaleido``)
IMAGE_FORMATS = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp")


def save_figure(figure: Any, path: str | os.PathLike[str], *, scale: float = 2.0) -> Path:
    """Write ``figure`` (a plotly ``Figure``/``FigureWidget``) to ``path`` in the format its
    suffix names (see the module docstring); ``scale`` multiplies a static image's pixel
    size. Returns the path. An unknown suffix, a non-figure or a static format without
    ``kaleido`` raises ``ValueError`` naming the argument and what to do."""
    if not (hasattr(figure, "to_dict") and hasattr(figure, "layout")):
        raise ValueError(f"figure must be a plotly figure (what the kit's figure builders "
                         f"return), got {type(figure).__name__}")
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in TEXT_FORMATS + IMAGE_FORMATS:
        raise ValueError(f"path={str(path)!r}: unknown figure format {suffix or '(none)'!r}; "
                         f"choose one of: {', '.join(TEXT_FORMATS + IMAGE_FORMATS)}")
    if path.is_dir():
        raise ValueError(f"path={str(path)!r} is a folder: give a file name")
    if suffix in IMAGE_FORMATS and importlib.util.find_spec("kaleido") is None:
        raise ValueError(f"path={str(path)!r}: a {suffix} image needs the optional package "
                         "'kaleido' (pip install kaleido; it drives a Chrome/Chromium "
                         "browser). Without it save as .html (interactive, offline) or use "
                         "the camera button of the figure's modebar to download a PNG")
    if suffix == ".html":
        payload = figure.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
    elif suffix == ".json":
        payload = figure.to_json().encode("utf-8")
    else:
        payload = figure.to_image(format=suffix.lstrip(".").replace("jpeg", "jpg"),
                                  scale=scale)
    with atomic_write(path) as handle:
        handle.write(payload)
    return path
