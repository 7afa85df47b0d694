"""``glyphs``: an Omniglot-like many-class image set rendered offline from matplotlib's fonts.

Classes are characters, groups are scripts or symbol families ("alphabets"), instances
are renderings of the character in different font files and styles with random jitter.
Everything comes from the TrueType fonts that matplotlib ships
(``matplotlib/mpl-data/fonts/ttf``), so the set needs no network and no extra dependency.

How one image is made:

1. **Clean rendering.** FreeType (``matplotlib.ft2font``) renders the character at a
   *fixed* em size (:data:`EM_PX` pixels per em at the output scale, supersampled
   :data:`SUPERSAMPLE` times), so that sizes stay meaningful: a dot stays a dot and a
   lower-case ``o`` stays smaller than ``O``. The ink bounding box is centred on the
   canvas. Only code points in the font's character map are rendered (others would come
   out as ``.notdef`` boxes); renderings without ink or too large for the canvas are
   dropped.
2. **Which characters.** Letters, digits, punctuation and symbols from the Unicode blocks
   in :data:`BLOCKS` (combining marks, spaces, control and modifier characters are
   skipped) that render in at least :data:`MIN_FONTS` of the :data:`FONT_FILES`. A
   character that looks like one kept before it is dropped (Latin ``A``, Greek
   ``Alpha`` and Cyrillic ``A`` would be one class with three names; so would the
   left and right one-eighth blocks once centred): see :func:`lookalike_distance` and
   :data:`DUPLICATE_DISTANCE`. Groups are visited in :data:`GROUP_ORDER`, so the Latin
   letter is the one kept. Groups larger than :data:`MAX_CLASSES_PER_GROUP` are thinned
   evenly along their code points, like Omniglot's alphabets of 14-55 characters.
3. **Instances.** Each instance takes one of the character's fonts (cycling through
   them in a random order, so every font is used about equally), varies the stroke
   width (a blend towards a 3x3 dilation or erosion, i.e. a max or min filter), applies
   a random affine map (rotation, shear, scale, shift) plus a smooth elastic
   displacement field (:data:`JITTER`), and is box-filtered down to 28x28. Ink is
   bright on a black background; each image is scaled so that its brightest pixel is 1.

The result: 1,276 classes in 34 groups, 40 instances each. Generation (rendering
on :data:`RENDER_WORKERS` processes, the jitter vectorised in torch) costs about a minute
of CPU time, spread over 2 cores, and happens once: the result is cached as
``glyphs_seed{seed}_v1.npz`` (uint8 images, uncompressed so that it loads fast) in the
data folder (see :mod:`dml_kit.data.paths`) and loads from there in a fraction of a
second. The class list does not depend on the seed; the seed only drives the jitter and
the font order.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
import unicodedata
import zipfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dml_kit._validation import check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.data.paths import atomic_write_npz, cache_file, check_writable

#: Bump when anything that changes the generated images changes (part of the file name).
VERSION = 1
IMAGE_SIZE = 28
#: Pixels per em at the output scale (a capital Latin letter is about 14 px tall).
EM_PX = 19
#: Glyphs are rendered and warped at this multiple of the output resolution.
SUPERSAMPLE = 2
#: A clean rendering whose ink is taller or wider than this (output pixels) is dropped.
MAX_EXTENT_PX = 25
#: A rendering with less ink than this (in fully-inked output pixels) counts as empty.
MIN_INK_PX = 1.5
MIN_FONTS = 4
#: Larger groups are thinned evenly to this many classes; the Latin alphabet (52 letters)
#: is always kept whole.
MAX_CLASSES_PER_GROUP = 40
DEFAULT_INSTANCES = 40
#: Processes that render the fonts (the rest of the generation is vectorised torch).
RENDER_WORKERS = 2
#: Two characters are look-alikes when their clean renderings in the same font, softened
#: by a small blur, differ by less than this relative L2 distance on average over the
#: fonts both have (see :func:`lookalike_distance`). Identical shapes score about 0-0.05,
#: ``▏``/``▕`` (the same bar once centred) 0.09, breve vs caron on ``A`` 0.05, ``A``
#: vs ``B`` 0.74, two hexagrams that differ in one line 0.15.
DUPLICATE_DISTANCE = 0.1

#: Text fonts that matplotlib ships and that map code points to the right shapes. Left
#: out on purpose: cmex10/cmsy10 and the other TeX fonts (symbols mapped onto letters),
#: LastResort (a placeholder box per block), the *Display* files (few glyphs) and
#: STIXNonUni/STIXSiz* (variants mapped to private or wrong code points).
FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
)

_PUNCT = "Punctuation"
_NUMBERS = "Numbers"
#: ``(first, last, group)`` code point ranges, searched in order (first match wins).
#: Mostly Unicode blocks; code points in no range are not used.
BLOCKS: tuple[tuple[int, int, str], ...] = (
    (0x0030, 0x0039, _NUMBERS),
    (0x0041, 0x005A, "Latin"), (0x0061, 0x007A, "Latin"),
    (0x0021, 0x007E, _PUNCT), (0x00A1, 0x00BF, _PUNCT),
    (0x00D7, 0x00D7, "Math operators"), (0x00F7, 0x00F7, "Math operators"),
    (0x00C0, 0x024F, "Latin extended"), (0x1E00, 0x1EFF, "Latin extended"),
    (0x2C60, 0x2C7F, "Latin extended"), (0xA720, 0xA7FF, "Latin extended"),
    (0xFB00, 0xFB06, "Latin extended"),
    (0x0250, 0x02AF, "IPA"),
    (0x0370, 0x03FF, "Greek"), (0x1F00, 0x1FFF, "Greek extended"),
    (0x2C80, 0x2CFF, "Coptic"),
    (0x0400, 0x052F, "Cyrillic"), (0xA640, 0xA69F, "Cyrillic"),
    (0x0530, 0x058F, "Armenian"), (0xFB13, 0xFB17, "Armenian"),
    (0x0590, 0x05FF, "Hebrew"), (0xFB1D, 0xFB4F, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0xFB50, 0xFDFF, "Arabic presentation forms"), (0xFE70, 0xFEFF, "Arabic presentation forms"),
    (0x07C0, 0x07FF, "NKo"),
    (0x0E80, 0x0EFF, "Lao"),
    (0x10A0, 0x10FF, "Georgian"), (0x2D00, 0x2D2F, "Georgian"),
    (0x13A0, 0x13FF, "Cherokee"),
    (0x1400, 0x167F, "Canadian syllabics"),
    (0x2D30, 0x2D7F, "Tifinagh"),
    (0xA4D0, 0xA4FF, "Lisu"),
    (0x2000, 0x206F, _PUNCT), (0x2E00, 0x2E7F, _PUNCT),
    (0x20A0, 0x20CF, "Currency"),
    (0x2100, 0x214F, "Letterlike symbols"),
    (0x2150, 0x218F, _NUMBERS),
    (0x2190, 0x21FF, "Arrows"), (0x27F0, 0x27FF, "Arrows"), (0x2900, 0x297F, "Arrows"),
    (0x2200, 0x22FF, "Math operators"), (0x2A00, 0x2AFF, "Math operators"),
    (0x27C0, 0x27EF, "Math symbols"), (0x2980, 0x29FF, "Math symbols"),
    (0x2300, 0x23FF, "Technical"), (0x2440, 0x245F, "Technical"),
    (0x2460, 0x24FF, "Enclosed alphanumerics"),
    (0x2500, 0x257F, "Box drawing"),
    (0x2580, 0x259F, "Block elements"),
    (0x25A0, 0x25FF, "Geometric shapes"), (0x2B00, 0x2BFF, "Geometric shapes"),
    (0x2600, 0x26FF, "Miscellaneous symbols"),
    (0x2700, 0x27BF, "Dingbats"),
    (0x2800, 0x28FF, "Braille"),
    (0x4DC0, 0x4DFF, "Yijing hexagrams"),
    (0x1D300, 0x1D35F, "Tai Xuan Jing tetragrams"),
    (0x1F030, 0x1F09F, "Domino tiles"),
    (0x1F600, 0x1F64F, "Emoticons"),
)

#: Priority when removing look-alikes: a class is compared with the classes kept from
#: earlier groups (and earlier code points of its own group).
GROUP_ORDER: tuple[str, ...] = tuple(dict.fromkeys(
    ["Latin", _NUMBERS, _PUNCT, "Greek", "Cyrillic", "Armenian", "Georgian", "Hebrew",
     "Arabic"] + [group for _, _, group in BLOCKS]))

#: Unicode general categories that are used: letters (except modifier letters), numbers,
#: punctuation and symbols (except modifier symbols such as lone accents).
_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lo", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
                         "Pi", "Pf", "Po", "Sm", "Sc", "So"})


def group_of(codepoint: int) -> str | None:
    """The group (script or symbol family) of a code point, or ``None`` if it is not used."""
    char = chr(codepoint)
    if unicodedata.category(char) not in _CATEGORIES:
        return None
    for first, last, group in BLOCKS:
        if first <= codepoint <= last:
            if group in ("Greek", "Greek extended") and unicodedata.name(char, "").startswith(
                    "COPTIC"):
                return "Coptic"
            return group
    return None


def class_name(codepoint: int) -> str:
    """A readable class name: the character followed by its code point, e.g. ``"A U+0041"``."""
    return f"{chr(codepoint)} U+{codepoint:04X}"


def font_paths() -> list[Path]:
    """Absolute paths of :data:`FONT_FILES` inside matplotlib's data folder."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [folder / name for name in FONT_FILES]


# ---- step 1: clean renderings ----------------------------------------------------------
def _render_font(path: Path, codepoints: list[int]) -> dict[int, np.ndarray]:
    """Render ``codepoints`` (all in the font's character map) with one font file.

    Returns a dict code point -> tight uint8 ink crop at the supersampled scale; empty and
    oversized renderings are left out.
    """
    from matplotlib import ft2font

    font = ft2font.FT2Font(str(path))
    font.set_size(EM_PX * SUPERSAMPLE, 72)  # at 72 dpi one point is one pixel
    max_extent = MAX_EXTENT_PX * SUPERSAMPLE
    min_ink = MIN_INK_PX * SUPERSAMPLE**2 * 255
    crops: dict[int, np.ndarray] = {}
    for codepoint in codepoints:
        font.set_text(chr(codepoint), 0.0, flags=ft2font.LoadFlags.NO_HINTING)
        font.draw_glyphs_to_bitmap(antialiased=True)
        image = np.asarray(font.get_image())
        rows = np.flatnonzero(image.max(axis=1))
        cols = np.flatnonzero(image.max(axis=0))
        if rows.size == 0:
            continue
        crop = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        if max(crop.shape) > max_extent or crop.sum(dtype=np.int64) < min_ink:
            continue
        crops[codepoint] = crop.copy()
    return crops


def _render_job(job: tuple[Path, list[int]]) -> dict[int, np.ndarray]:
    return _render_font(*job)


def _render_all(jobs: list[tuple[Path, list[int]]], progress: bool) -> list[dict[int, np.ndarray]]:
    """Run :func:`_render_font` for each ``(path, codepoints)`` job, on :data:`RENDER_WORKERS`
    processes when more than one CPU is available (falls back to this process)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="glyphs: rendering fonts", unit="font",
               disable=not progress, leave=False)
    workers = min(RENDER_WORKERS, os.cpu_count() or 1)
    results: list[dict[int, np.ndarray]] = []
    with bar:
        if workers > 1:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            try:
                with ProcessPoolExecutor(workers, mp_context=context) as pool:
                    for crops in pool.map(_render_job, jobs):
                        results.append(crops)
                        bar.update()
                return results
            except (OSError, BrokenProcessPool):
                results = []  # no processes here (sandbox, no /dev/shm): render in-process
                bar.reset()
        for job in jobs:
            results.append(_render_job(job))
            bar.update()
    return results


def _centre(crop: np.ndarray, size: int) -> np.ndarray:
    """Paste ``crop`` into a ``size`` x ``size`` canvas with its bounding box centred."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    height, width = crop.shape
    top, left = (size - height) // 2, (size - width) // 2
    canvas[top:top + height, left:left + width] = crop
    return canvas


def _soften(images: np.ndarray) -> np.ndarray:
    """Blur ``(n, 28, 28)`` images with the separable kernel [1, 2, 1] / 4, so that the
    look-alike test does not hinge on sub-pixel placement."""
    kernel = (0.25, 0.5, 0.25)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    rows = np.sum([w * padded[:, i:i + images.shape[1]] for i, w in enumerate(kernel)], axis=0)
    return np.sum([w * rows[:, :, i:i + images.shape[2]] for i, w in enumerate(kernel)], axis=0)


def duplicate_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Relative L2 distances between the rows of ``a`` (n, D) and ``b`` (m, D): (n, m).

    ``||a_i - b_j|| / max(||a_i||, ||b_j||)``: 0 for identical images, about 1.4 for images
    of equal ink that do not overlap at all.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    sq_a = (a * a).sum(1)
    sq_b = (b * b).sum(1)
    sq_dist = np.maximum(sq_a[:, None] + sq_b[None, :] - 2.0 * a @ b.T, 0.0)
    return np.sqrt(sq_dist / np.maximum(np.maximum(sq_a[:, None], sq_b[None, :]), 1e-12))


def lookalike_distance(codepoint_a: int, codepoint_b: int) -> float:
    """The look-alike score of two characters used to drop duplicate classes.

    Both are rendered cleanly in every font of :data:`FONT_FILES` that has both; the
    score is :func:`duplicate_distance` of the softened 28x28 renderings, averaged over
    those fonts (``inf`` when they share no font). Below :data:`DUPLICATE_DISTANCE`
    means "the same shape".
    """
    from matplotlib import ft2font

    size = IMAGE_SIZE * SUPERSAMPLE
    scores = []
    for path in font_paths():
        charmap = ft2font.FT2Font(str(path)).get_charmap()
        if codepoint_a not in charmap or codepoint_b not in charmap:
            continue
        crops = _render_font(path, [codepoint_a, codepoint_b])
        if len(crops) < 2:
            continue
        images = _soften(_downsample(np.stack([_centre(crops[codepoint_a], size),
                                               _centre(crops[codepoint_b], size)])))
        flat = images.reshape(2, -1)
        scores.append(float(duplicate_distance(flat[:1], flat[1:])[0, 0]))
    return float(np.mean(scores)) if scores else float("inf")


@dataclass(frozen=True)
class GlyphInventory:
    """The selected characters and their clean renderings (independent of any seed).

    Attributes:
        codepoints: one code point per class, in class order (grouped, groups in
            :data:`GROUP_ORDER`, code points ascending within a group).
        groups: the group of each class.
        fonts: for each class, the indices into :data:`FONT_FILES` that render it.
        canvases: for each class, ``(len(fonts[c]), S*28, S*28)`` uint8 clean renderings
            (``S`` = :data:`SUPERSAMPLE`), ink bounding box centred.
        n_candidates: characters that render in enough fonts, before look-alikes were
            removed and groups were thinned.
        n_duplicates: characters removed as look-alikes of an earlier class.
        render_seconds: time spent rendering and selecting.
    """

    codepoints: tuple[int, ...]
    groups: tuple[str, ...]
    fonts: tuple[tuple[int, ...], ...]
    canvases: tuple[np.ndarray, ...]
    n_candidates: int
    n_duplicates: int
    render_seconds: float

    def clean_images(self, index: int) -> np.ndarray:
        """Class ``index``'s clean renderings at 28x28, float in [0, 1]: ``(n_fonts, 28, 28)``."""
        return _downsample(self.canvases[index])

    def mean_renderings(self) -> np.ndarray:
        """Clean renderings averaged over each class's fonts, ``(n_classes, 784)`` float."""
        return np.stack([self.clean_images(i).mean(0).reshape(-1)
                         for i in range(len(self.codepoints))])


def _downsample(canvases: np.ndarray) -> np.ndarray:
    """Box-filter supersampled uint8 canvases ``(n, S*28, S*28)`` to float ``(n, 28, 28)``."""
    n = canvases.shape[0]
    s = SUPERSAMPLE
    blocks = canvases.reshape(n, IMAGE_SIZE, s, IMAGE_SIZE, s)
    return blocks.sum(axis=(2, 4), dtype=np.uint32).astype(np.float32) / (255.0 * s * s)


def _spread(items: list[int], count: int) -> list[int]:
    """At most ``count`` items picked evenly across ``items`` (all of them if few)."""
    if len(items) <= count:
        return items
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in picks]


def _close_pairs(means: np.ndarray, threshold: float, chunk: int = 1024) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, whose mean renderings are closer than ``threshold``."""
    pairs = []
    for start in range(0, len(means), chunk):
        block = duplicate_distance(means[start:start + chunk], means)
        rows, cols = np.nonzero(block < threshold)
        rows = rows + start
        keep = rows < cols
        pairs.append(np.stack([rows[keep], cols[keep]], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)


def _per_font_distance(pairs: np.ndarray, small: np.ndarray,
                       row_of: np.ndarray) -> np.ndarray:
    """For each pair of classes, :func:`duplicate_distance` of their clean renderings in
    the same font, averaged over the fonts both have (``inf`` when they share none).

    ``small`` holds one flattened 28x28 rendering per (class, font) row and ``row_of``
    ``(n_classes, n_fonts)`` its row, or -1.
    """
    total = np.zeros(len(pairs))
    count = np.zeros(len(pairs))
    for font in range(row_of.shape[1]):
        a, b = row_of[pairs[:, 0], font], row_of[pairs[:, 1], font]
        both = np.flatnonzero((a >= 0) & (b >= 0))
        if both.size == 0:
            continue
        xa = small[a[both]].astype(np.float32)
        xb = small[b[both]].astype(np.float32)
        norm = np.maximum(np.linalg.norm(xa, axis=1), np.linalg.norm(xb, axis=1))
        total[both] += np.linalg.norm(xa - xb, axis=1) / np.maximum(norm, 1e-12)
        count[both] += 1
    return np.where(count > 0, total / np.maximum(count, 1), np.inf)


_INVENTORY: GlyphInventory | None = None


def glyph_inventory(progress: bool = False) -> GlyphInventory:
    """Render every candidate character in every font and select the classes.

    Built once per process and kept (the result does not depend on any seed).
    """
    global _INVENTORY
    if _INVENTORY is None:
        _INVENTORY = _build_inventory(progress)
    return _INVENTORY


def _build_inventory(progress: bool) -> GlyphInventory:
    """The work behind :func:`glyph_inventory`."""
    from matplotlib import ft2font

    start = time.perf_counter()
    paths = font_paths()
    charmaps = [set(ft2font.FT2Font(str(p)).get_charmap()) for p in paths]
    coverage: dict[int, int] = {}
    for charmap in charmaps:
        for codepoint in charmap:
            coverage[codepoint] = coverage.get(codepoint, 0) + 1
    wanted = {cp for cp, n in coverage.items() if n >= MIN_FONTS and group_of(cp) is not None}
    jobs = [(path, sorted(wanted & charmap)) for path, charmap in zip(paths, charmaps,
                                                                     strict=True)]
    crops_by_font = _render_all(jobs, progress)

    # classes in priority order, each with the fonts that render it
    rank = {group: i for i, group in enumerate(GROUP_ORDER)}
    ordered = sorted(wanted, key=lambda cp: (rank[group_of(cp)], cp))  # type: ignore[index]
    codepoints, fonts = [], []
    for codepoint in ordered:
        have = tuple(f for f, crops in enumerate(crops_by_font) if codepoint in crops)
        if len(have) >= MIN_FONTS:
            codepoints.append(codepoint)
            fonts.append(have)

    # one 28x28 clean rendering per (class, font) for the look-alike test
    size = IMAGE_SIZE * SUPERSAMPLE
    row_of = np.full((len(codepoints), len(paths)), -1, dtype=np.int64)
    small_rows, means = [], []
    next_row = 0
    for c, (codepoint, have) in enumerate(zip(codepoints, fonts, strict=True)):
        images = _soften(_downsample(np.stack([_centre(crops_by_font[f][codepoint], size)
                                               for f in have]))).reshape(len(have), -1)
        row_of[c, list(have)] = np.arange(next_row, next_row + len(have))
        next_row += len(have)
        small_rows.append(np.round(images * 255).astype(np.uint8))
        means.append(images.mean(0))
    small = np.concatenate(small_rows)
    pairs = _close_pairs(np.stack(means), 0.5)
    same = pairs[_per_font_distance(pairs, small, row_of) < DUPLICATE_DISTANCE]
    earlier: dict[int, list[int]] = {}
    for i, j in same:
        earlier.setdefault(int(j), []).append(int(i))
    kept: list[int] = []
    kept_set: set[int] = set()
    for c in range(len(codepoints)):
        if not any(i in kept_set for i in earlier.get(c, ())):
            kept.append(c)
            kept_set.add(c)

    # thin out large groups evenly
    by_group: dict[str, list[int]] = {}
    for c in kept:
        by_group.setdefault(group_of(codepoints[c]), []).append(c)  # type: ignore[arg-type]
    final = [c for group, members in by_group.items()
             for c in (members if group == "Latin" else _spread(members, MAX_CLASSES_PER_GROUP))]
    return GlyphInventory(
        codepoints=tuple(codepoints[c] for c in final),
        groups=tuple(group_of(codepoints[c]) for c in final),  # type: ignore[misc]
        fonts=tuple(fonts[c] for c in final),
        canvases=tuple(np.stack([_centre(crops_by_font[f][codepoints[c]], size)
                                 for f in fonts[c]]) for c in final),
        n_candidates=len(codepoints),
        n_duplicates=len(codepoints) - len(kept),
        render_seconds=time.perf_counter() - start,
    )


# ---- step 3: jittered instances --------------------------------------------------------
#: Jitter ranges (uniform): rotation in degrees, horizontal shear, log2 of the scale,
#: relative aspect change, shift in output pixels, stroke-width blend (-1 thin .. 1 bold),
#: standard deviation of the elastic displacement in output pixels and its grid size.
JITTER = {
    "rotation_deg": 10.0,
    "shear": 0.15,
    "log2_scale": 0.14,
    "aspect": 0.06,
    "shift_px": 1.5,
    "stroke": 1.0,
    "elastic_px": 0.6,
    "elastic_grid": 5,
}


def _jitter_params(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Draw every random quantity for ``n`` instances at once (so chunking cannot change them)."""
    def uniform(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1) * scale

    grid = int(JITTER["elastic_grid"])
    return {
        "rotation": uniform(n, scale=JITTER["rotation_deg"] * np.pi / 180),
        "shear": uniform(n, scale=JITTER["shear"]),
        "scale": torch.exp2(uniform(n, scale=JITTER["log2_scale"])),
        "aspect": 1 + uniform(n, scale=JITTER["aspect"]),
        "shift": uniform(n, 2, scale=JITTER["shift_px"]),
        "stroke": uniform(n, scale=JITTER["stroke"]),
        "elastic": torch.randn((n, 2, grid, grid), generator=generator) * JITTER["elastic_px"],
    }


def _max3(image: torch.Tensor) -> torch.Tensor:
    """3x3 max filter of ``(B, H, W)`` images (zero padding), as two separable passes.

    Written with shifted maxima because ``max_pool2d`` with stride 1 is slow on CPU.
    """
    padded = F.pad(image, (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    return torch.maximum(torch.maximum(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


@functools.lru_cache(maxsize=4)
def _cubic_weights(points: int, size: int) -> torch.Tensor:
    """``(size, points)`` bicubic interpolation weights from ``points`` control points."""
    basis = torch.eye(points).view(points, 1, points, 1)
    weights = F.interpolate(basis, size=(size, 1), mode="bicubic", align_corners=True)
    return weights.view(points, size).T.contiguous()


def _augment(clean: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Stroke-width change, affine + elastic warp and box-filter downsampling.

    ``clean``: ``(B, S*28, S*28)`` float in [0, 1]; returns ``(B, 28, 28)`` in [0, 1]
    with each image's maximum scaled to 1.
    """
    batch, size, _ = clean.shape
    # stroke width: blend towards a 3x3 dilation (max filter) or erosion (min filter)
    t = params["stroke"]
    image = clean.clone()
    bold, thin = t > 0, t < 0
    image[bold] += t[bold].view(-1, 1, 1) * (_max3(clean[bold]) - clean[bold])
    image[thin] += 0.6 * t[thin].view(-1, 1, 1) * (_max3(-clean[thin]) + clean[thin])

    # affine map from output to input coordinates, in grid_sample's [-1, 1] units
    cos, sin = torch.cos(params["rotation"]), torch.sin(params["rotation"])
    rotate = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shear = torch.eye(2).repeat(batch, 1, 1)
    shear[:, 0, 1] = params["shear"]
    scale = torch.diag_embed(torch.stack([params["scale"] * params["aspect"],
                                          params["scale"] / params["aspect"]], -1))
    inverse = torch.linalg.inv(rotate @ shear @ scale)   # image -> glyph
    offset = -(inverse @ (params["shift"] * (2.0 / IMAGE_SIZE)).unsqueeze(-1)).squeeze(-1)
    # smooth elastic displacement (output pixels -> normalised units), bicubic from a
    # coarse grid, laid out as grid_sample's (B, H, W, 2) grid; then add the affine map
    # (written out because F.affine_grid is several times slower on CPU)
    weights = _cubic_weights(params["elastic"].shape[-1], size) * (2.0 / IMAGE_SIZE) ** 0.5
    grid = torch.einsum("hi,bcij,wj->bhwc", weights, params["elastic"], weights)
    centres = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1  # pixel centres
    for axis in range(2):
        grid[..., axis] += (inverse[:, axis, 0].view(batch, 1, 1) * centres.view(1, 1, size)
                            + inverse[:, axis, 1].view(batch, 1, 1) * centres.view(1, size, 1)
                            + offset[:, axis].view(batch, 1, 1))
    warped = F.grid_sample(image.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    small = F.avg_pool2d(warped, SUPERSAMPLE).squeeze(1).clamp(0, 1)
    peak = small.amax(dim=(1, 2), keepdim=True)
    return small / peak.clamp(min=1e-6)


def generate_glyphs(instances_per_class: int = DEFAULT_INSTANCES, seed: int = 0,
                    progress: bool = True, chunk: int = 1024) -> dict[str, np.ndarray]:
    """Generate the glyph set; return the arrays that the cache file stores.

    Keys: ``x`` uint8 ``(N, 28, 28)``, ``y`` int64 ``(N,)`` (class-major, classes in
    :class:`GlyphInventory` order), ``font`` int8 ``(N,)`` index into ``font_files``,
    ``clean_means`` uint8 ``(n_classes, 28, 28)`` (each class's un-jittered renderings
    averaged over its fonts), ``codepoints``, ``class_names``, ``class_groups``,
    ``font_files``, ``version``, ``seed``, ``instances_per_class`` and ``seconds``
    (generation time).
    """
    from tqdm.auto import tqdm

    instances_per_class = check_int("instances_per_class", instances_per_class, 1, 10_000)
    seed = check_seed(seed)
    start = time.perf_counter()
    inventory = glyph_inventory(progress=progress)
    n_classes = len(inventory.codepoints)
    generator = torch.Generator().manual_seed(seed)
    # fonts: each class cycles through its fonts in a random order
    font_pos = np.empty((n_classes, instances_per_class), dtype=np.int64)
    for c, fonts in enumerate(inventory.fonts):
        order = torch.randperm(len(fonts), generator=generator).numpy()
        font_pos[c] = order[np.arange(instances_per_class) % len(fonts)]
    total = n_classes * instances_per_class
    params = _jitter_params(total, generator)
    # flatten the clean renderings so that instance i reads row source[i]
    offsets = np.cumsum([0] + [len(f) for f in inventory.fonts])[:-1]
    clean_all = torch.from_numpy(np.concatenate(inventory.canvases))
    source = torch.from_numpy((offsets[:, None] + font_pos).reshape(-1))
    x = np.empty((total, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    with tqdm(total=total, desc="glyphs: drawing instances", unit="img", disable=not progress,
              leave=False) as bar:
        for lo in range(0, total, chunk):
            hi = min(lo + chunk, total)
            clean = clean_all[source[lo:hi]].float().div_(255)
            images = _augment(clean, {k: v[lo:hi] for k, v in params.items()})
            x[lo:hi] = images.mul(255).round().to(torch.uint8).numpy()
            bar.update(hi - lo)
    font_of_class = [np.asarray(f) for f in inventory.fonts]
    font = np.stack([font_of_class[c][font_pos[c]] for c in range(n_classes)]).reshape(-1)
    return {
        "x": x,
        "y": np.repeat(np.arange(n_classes, dtype=np.int64), instances_per_class),
        "font": font.astype(np.int8),
        "clean_means": np.round(inventory.mean_renderings() * 255).astype(np.uint8).reshape(
            n_classes, IMAGE_SIZE, IMAGE_SIZE),
        "codepoints": np.asarray(inventory.codepoints, dtype=np.int32),
        "class_names": np.asarray([class_name(cp) for cp in inventory.codepoints]),
        "class_groups": np.asarray(inventory.groups),
        "font_files": np.asarray(FONT_FILES),
        "version": np.asarray(VERSION),
        "seed": np.asarray(seed),
        "instances_per_class": np.asarray(instances_per_class),
        "seconds": np.asarray(time.perf_counter() - start),
    }


def cache_name(seed: int = 0, instances_per_class: int = DEFAULT_INSTANCES) -> str:
    """File name of the cached glyph set, e.g. ``glyphs_seed0_v1.npz``."""
    extra = "" if instances_per_class == DEFAULT_INSTANCES else f"_n{instances_per_class}"
    return f"glyphs_seed{seed}{extra}_v{VERSION}.npz"


def _to_dataset(arrays: dict[str, np.ndarray] | np.lib.npyio.NpzFile) -> Dataset:
    """Build the :class:`Dataset` from the cached arrays (uint8 -> float in [0, 1])."""
    x = torch.from_numpy(np.ascontiguousarray(arrays["x"])).unsqueeze(1).float().div_(255)
    return Dataset(
        name="glyphs",
        x=x,
        y=torch.from_numpy(np.asarray(arrays["y"], dtype=np.int64)),
        class_names=tuple(str(n) for n in arrays["class_names"]),
        class_groups=tuple(str(g) for g in arrays["class_groups"]),
    )


def load_glyphs(seed: int = 0, root: str | os.PathLike[str] | None = None,
                instances_per_class: int = DEFAULT_INSTANCES, progress: bool = True) -> Dataset:
    """The glyph set for ``seed``: read from the cache, generating and caching it first.

    Args:
        seed: drives the jitter and the font order (the classes are the same for every seed).
        root: cache folder; default :func:`dml_kit.data.paths.data_root`.
        instances_per_class: images per character (default 40, the cached default).
        progress: show tqdm progress bars while generating.
    """
    seed = check_seed(seed)
    instances_per_class = check_int("instances_per_class", instances_per_class, 1, 10_000)
    path = cache_file(cache_name(seed, instances_per_class), root)
    if path.exists():
        try:
            with np.load(path) as cached:
                if int(cached["version"]) == VERSION:
                    return _to_dataset(cached)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # unreadable or stale: generate it again
    check_writable(path.parent, "the glyph cache")  # before a minute of rendering, not after
    arrays = generate_glyphs(instances_per_class, seed, progress=progress)
    atomic_write_npz(path, compress=False, **arrays)  # uncompressed: loads faster
    return _to_dataset(arrays)

