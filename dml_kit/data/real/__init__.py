"""Real datasets: MNIST, Fashion-MNIST, Omniglot (+ the 20 one-shot runs), Isolet, and the
DML benchmarks CUB-200-2011, Cars196 and Stanford Online Products.

Every loader returns a :class:`~dml_kit.data.core.Dataset` and takes the same keywords:
``download`` (fetch missing files, see :mod:`dml_kit.data.download`), ``root`` (cache
root), ``mirror`` (base URL or folder replacing the official host) and ``path`` (a copy
you already have: a file or a folder). ``seed`` is accepted for the registry's sake; the
files are fixed, so it changes nothing.

Parsed arrays are cached as ``.npz`` in ``<root>/<dataset>/`` (written atomically), so
the second load skips decoding. Copies given with ``path=`` are parsed every time and
never cached (a partial copy must not pose as the full dataset).

File formats, in brief:

* **IDX** (MNIST, Fashion-MNIST): big-endian header ``0, 0, dtype, ndim``, ``ndim`` uint32
  sizes, then the raw array; usually gzip-compressed.
* **Omniglot**: zips of ``<split>/<Alphabet>/characterNN/<id>_<drawer>.png``, 105x105
  binary images with black strokes on white. The kit inverts them (strokes bright) and
  resizes them to ``size x size`` with Lanczos antialiasing. Class = ``Alphabet/characterNN``,
  group = alphabet. ``omniglot_rotated`` (``omniglot(rotations=True)``) adds the
  90/180/270-degree rotations as new classes ``Alphabet/characterNN@90`` (6,492 classes), as
  prototypical networks and Adapted Deep Embeddings do. ``all_runs.zip`` holds Lake et
  al.'s 20 one-shot runs.
* **Isolet**: UCI text lines of 617 comma-separated features and a class ``1.`` .. ``26.``,
  shipped as Unix ``compress`` (``.Z``) files in a zip; the kit decodes ``.Z`` itself.
* **CUB / Cars196 / SOP**: JPEG archives plus their official label files; images are
  squashed to ``size x size`` RGB (default 32).

Layout: :mod:`~dml_kit.data.real.base` (cache, fetching, arrays -> Dataset), one module per
dataset family (:mod:`~dml_kit.data.real.mnist_idx`, :mod:`~dml_kit.data.real.omniglot_files`,
:mod:`~dml_kit.data.real.isolet_files`, :mod:`~dml_kit.data.real.image_benchmarks`) and the
``.Z`` decoder (:mod:`~dml_kit.data.real.lzw`); this package re-exports their public names
and registers every dataset with :mod:`dml_kit.data` on import.
"""

from __future__ import annotations

from collections.abc import Callable

from dml_kit.data.core import Dataset
from dml_kit.data.real.base import CACHE_VERSION, PARTS, PathLike
from dml_kit.data.real.image_benchmarks import cars196, cub200, sop
from dml_kit.data.real.isolet_files import ISOLET_CLASSES, isolet, parse_isolet_text
from dml_kit.data.real.lzw import unlzw
from dml_kit.data.real.mnist_idx import (
    DEBIAN_FASHION_MNIST,
    FASHION_CLASSES,
    FASHION_GROUPS,
    MNIST_CLASSES,
    fashion_mnist,
    mnist,
    read_idx,
)
from dml_kit.data.real.omniglot_files import (
    OMNIGLOT_SPLITS,
    ROTATIONS,
    OmniglotImages,
    OneShotRun,
    evaluate_one_shot_runs,
    glyph_to_array,
    omniglot,
    omniglot_background,
    omniglot_evaluation,
    omniglot_one_shot_runs,
    omniglot_rotated,
    parse_omniglot_npz,
    parse_omniglot_zips,
    parse_one_shot_runs,
    rotate_omniglot,
)

__all__ = [
    "DEBIAN_FASHION_MNIST",
    "LOADERS",
    "OmniglotImages",
    "OneShotRun",
    "cars196",
    "cub200",
    "evaluate_one_shot_runs",
    "fashion_mnist",
    "glyph_to_array",
    "isolet",
    "mnist",
    "omniglot",
    "omniglot_background",
    "omniglot_evaluation",
    "omniglot_one_shot_runs",
    "omniglot_rotated",
    "parse_isolet_text",
    "parse_omniglot_npz",
    "parse_omniglot_zips",
    "parse_one_shot_runs",
    "read_idx",
    "register_all",
    "rotate_omniglot",
    "sop",
    "unlzw",
]

# also importable from here (as before the split): the cache format, the family constants
_CONSTANTS = (CACHE_VERSION, PARTS, PathLike, MNIST_CLASSES, FASHION_CLASSES, FASHION_GROUPS,
             ISOLET_CLASSES, OMNIGLOT_SPLITS, ROTATIONS)


# ---- registry ---------------------------------------------------------------------------
#: Registry name -> loader; each is called as ``loader(seed=..., download=..., root=...)``.
LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "omniglot": omniglot,
    "omniglot_background": omniglot_background,
    "omniglot_evaluation": omniglot_evaluation,
    "omniglot_rotated": omniglot_rotated,
    "isolet": isolet,
    "cub200": cub200,
    "cars196": cars196,
    "sop": sop,
}


def register_all(register: Callable[..., object] | None = None) -> None:
    """Register every real dataset with ``dml_kit.data``'s registry (done at import)."""
    if register is None:
        from dml_kit.data import register as default  # noqa: PLC0415 (defined before we are imported)
        register = default
    for name, loader in LOADERS.items():
        register(name, loader, replace=True)


register_all()
