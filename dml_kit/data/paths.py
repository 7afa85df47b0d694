"""Where the kit caches generated and downloaded data, and how it writes there safely.

The cache root is ``$DML_KIT_DATA`` when that environment variable is set, else the
``data/`` folder of the checkout (next to the ``dml_kit`` package). Every write goes to a
temporary file in the destination folder first and is then moved into place with
:func:`os.replace`, which is atomic on one file system: a crash, a ``Ctrl-C`` or two
processes generating the same file at once never leave a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

ENV_VAR = "DML_KIT_DATA"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``root`` if given, else ``$DML_KIT_DATA``, else ``<repo>/data``.

    The folder is not created here; writers create it on demand. A ``$DML_KIT_DATA``
    that names an existing file (not a folder) raises ``ValueError`` naming it.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{ENV_VAR}={env} is a file, not a folder: point {ENV_VAR} at "
                             "a folder for the kit's data and results (it is created if "
                             f"missing), or unset it to use the checkout's data/")
        return path
    return Path(__file__).resolve().parents[2] / "data"


def cache_file(filename: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The path of ``filename`` inside the cache folder (see :func:`data_root`)."""
    return data_root(root) / filename


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary binary file next to ``path``; on success move it onto ``path``.

    Use as ``with atomic_write(p) as f: f.write(...)``. If the body raises, the temporary
    file is deleted and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; cache files are shareable
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_npz(path: str | os.PathLike[str], *, compress: bool = True,
                     **arrays: np.ndarray) -> Path:
    """Save ``arrays`` as a numpy ``.npz`` archive at ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_write(path) as handle:
        if compress:
            np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]  # numpy stubs
        else:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
    return path
