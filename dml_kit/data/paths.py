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
import secrets
import tempfile
import time
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


#: a ``.part`` file whose writer's pid cannot be read (older, random names) is left alone
#: for this long; a pid-named part is removed once its writer is gone (or after a day)
STALE_PART_S = 600.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (also when another user owns it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def part_path(path: str | os.PathLike[str]) -> Path:
    """The temporary file ``path`` is written to: ``.<name>.<pid>-<random>.part`` in the
    same folder, so :func:`clean_stale_parts` can tell a killed writer's part from a live
    one."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


def clean_stale_parts(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the ``.part`` files of ``path`` left by killed writers; return them.

    A part naming its writer's pid is removed when that process is gone (or the file is a
    day old, in case the pid was reused); a part without a pid (older versions used
    random names) once it is :data:`STALE_PART_S` old. A live writer's part is kept."""
    path = Path(path)
    removed = []
    for part in path.parent.glob(f".{path.name}.*.part"):
        tag = part.name[len(path.name) + 2:-len(".part")]
        pid_text = tag.split("-", 1)[0]
        try:
            age = time.time() - part.stat().st_mtime
        except OSError:
            continue
        if "-" in tag and pid_text.isdigit():
            pid = int(pid_text)
            if (pid == os.getpid() or pid_alive(pid)) and age < 24 * 3600:
                continue
        elif age < STALE_PART_S:
            continue
        with contextlib.suppress(OSError):
            part.unlink()
            removed.append(part)
    return removed


def check_writable(folder: str | os.PathLike[str], what: str = "the cache") -> Path:
    """Create ``folder`` if needed and check that a file can be written there (a probe
    file, removed at once); return it. ``ValueError`` naming the folder and
    ``$DML_KIT_DATA`` otherwise. Call it *before* long work whose result goes there
    (:func:`dml_kit.data.glyphs.load_glyphs` renders for a minute)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(
            f"cannot write {what} in {folder} ({type(err).__name__}: "
            f"{err.strerror or err}): nothing was written. Point ${ENV_VAR} (or root=) at a "
            f"writable folder, e.g. export {ENV_VAR}=~/dml_kit_data") from None
    return folder


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary binary file next to ``path``; on success move it onto ``path``.

    Use as ``with atomic_write(p) as f: f.write(...)``. The temporary file is a
    :func:`part_path`; parts of ``path`` that killed writers left are removed first
    (:func:`clean_stale_parts`). If the body raises (``Ctrl-C`` included), the part is
    deleted and ``path`` is left as it was; a ``kill -9`` leaves the part for the next
    writer to clean. ``path`` itself is never half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_parts(path)
    part = part_path(path)
    try:
        with open(part, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(part, 0o644)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
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
