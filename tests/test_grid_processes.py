"""A killed or interrupted grid leaves no process behind (the process executor's workers
die with the grid; an interrupt stops them instead of waiting for their jobs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc").is_dir(),
                                reason="reads process trees from /proc (Linux)")

#: a grid whose jobs run for minutes: two workers each train a long source model
SLOW_GRID = textwrap.dedent("""
    from dml_kit.experiments import run_grid
    run_grid("digits", ["metric", "protonet"], [1], [5], [0, 1], tasks=1, compare_losses=[],
             store={store!r}, executor="process", max_workers=2, progress=False,
             embedding_dim=16, hidden=(32,), source_epochs=10_000, source_patience=10_000,
             batches_per_epoch=50, episodes_per_epoch=50)
""")


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _descendants(root: int) -> set[int]:
    pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    children: dict[int, list[int]] = {}
    for pid in pids:
        parent = _parent(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    out: set[int] = set()
    frontier = [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in out:
                out.add(child)
                frontier.append(child)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":   # zombies are gone
                    alive.add(pid)
        except OSError:
            pass
    return alive


def _start_grid(tmp_path: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    """The slow grid in a process of its own; returns it and its workers once both run
    their first job (a few seconds after they are spawned)."""
    code = SLOW_GRID.format(store=str(tmp_path / "r.sqlite"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=dict(os.environ,
                                                             DML_KIT_DATA=str(tmp_path)))
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        workers = {p for p in _descendants(proc.pid) if "spawn_main" in _cmdline(p)}
        if len(workers) >= 2:
            break
        time.sleep(0.5)
    assert len(workers) >= 2, f"the grid did not start two workers: {proc.poll()}"
    time.sleep(8)                       # past the workers' start-up: they are training now
    return proc, _descendants(proc.pid)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.25)
    return _alive(pids)


@pytest.mark.timeout(300)
def test_sigkill_of_a_grid_leaves_no_process_behind(tmp_path: Path) -> None:
    proc, tree = _start_grid(tmp_path)
    assert tree, "no worker process found"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    left = _wait_gone(tree, 20)
    for pid in left:                    # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not left, f"orphans after SIGKILL: {[_cmdline(p)[:80] for p in left]}"


@pytest.mark.timeout(300)
def test_an_interrupted_grid_stops_its_workers_at_once(tmp_path: Path) -> None:
    proc, tree = _start_grid(tmp_path)
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)    # what Ctrl-C and Jupyter's Stop button send
    proc.wait(timeout=60)
    stopped = time.monotonic() - start
    left = _wait_gone(tree, 20)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers left after an interrupt: {[_cmdline(p)[:80] for p in left]}"
    assert stopped < 30, f"the interrupt took {stopped:.0f} s: it waited for the jobs"
    assert b"KeyboardInterrupt" in proc.stderr.read() if proc.stderr else True
