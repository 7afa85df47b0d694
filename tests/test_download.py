"""The downloader, offline: a loopback HTTP server on 127.0.0.1 plays the official host.

Covers success, rerun from cache (no second request), checksum mismatch, truncated
transfers, a transfer killed mid-way (subprocess + SIGKILL), the offline error message,
local copies (``path=``), mirrors (argument, environment, local folder) and the manifest.
No test reaches the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dml_kit.data import download as dl

REPO = Path(__file__).resolve().parents[1]


# ---- a loopback server -------------------------------------------------------------------
@dataclass
class Route:
    body: bytes
    mode: str = "ok"  # "ok" | "truncate" (close after half, Content-Length says all) | "slow"


@dataclass
class Loopback:
    """What the test controls: routes by URL path, and the requests seen."""

    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def serve(self, path: str, body: bytes, mode: str = "ok") -> str:
        self.routes[path] = Route(body, mode)
        return self.url + path

    def count(self, path: str) -> int:
        return self.requests.count(path)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: Loopback = self.server.state  # type: ignore[attr-defined]
        state.requests.append(self.path)
        route = state.routes.get(self.path)
        if route is None:
            self.send_error(404, "not here")
            return
        body = route.body
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if route.mode == "truncate":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif route.mode == "slow":  # a trickle, until the client dies or the test ends
                step = max(1, len(body) // 50)
                for i in range(0, len(body), step):
                    if state.stop.is_set():
                        break
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    time.sleep(0.2)
                self.close_connection = True
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    """An HTTP server on 127.0.0.1 and a random free port, in a daemon thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    state = Loopback(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def fake_entry(monkeypatch: pytest.MonkeyPatch, body: bytes, *, dataset: str = "mnist",
               filename: str = "t10k-labels-idx1-ubyte.gz", hashed: bool = True,
               sized: bool = True) -> dl.RemoteFile:
    """Point a manifest entry at ``body``'s checksum and size (the test's own file)."""
    entry = dl.RemoteFile(dataset, filename, f"https://example.invalid/{filename}",
                          len(body) if sized else None,
                          f"sha256:{hashlib.sha256(body).hexdigest()}" if hashed else None)
    monkeypatch.setitem(dl.MANIFEST[dataset], filename, entry)
    return entry


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (relative names), hidden ones included."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(autouse=True)
def _no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)


BODY = os.urandom(200_000)


# ---- success and cache -----------------------------------------------------------------
def test_download_success_then_rerun_from_cache(loopback: Loopback, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry(monkeypatch, BODY)
    loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY)
    got = dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
                   mirror=loopback.url, progress=False)
    assert got == tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert got.read_bytes() == BODY
    assert files_under(tmp_path) == ["mnist/t10k-labels-idx1-ubyte.gz"]  # no staging left
    assert loopback.count("/mnist/t10k-labels-idx1-ubyte.gz") == 1
    # second call: from the cache, no request (even with download=False)
    again = dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
                     mirror=loopback.url, progress=False)
    assert again == got
    assert dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path) == got
    assert loopback.count("/mnist/t10k-labels-idx1-ubyte.gz") == 1
    assert dl.is_cached("mnist", "t10k-labels-idx1-ubyte.gz", tmp_path)


def test_cache_root_from_environment(loopback: Loopback, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry(monkeypatch, BODY)
    loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY)
    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv(dl.MIRROR_ENV, loopback.url)  # the mirror from the environment too
    got = dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", download=True, progress=False)
    assert got == tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert loopback.count("/mnist/t10k-labels-idx1-ubyte.gz") == 1


def test_progress_bar_is_shown(loopback: Loopback, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capfd: pytest.CaptureFixture[str]) -> None:
    fake_entry(monkeypatch, BODY)
    loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY)
    dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
             mirror=loopback.url, progress=True)
    err = capfd.readouterr().err
    assert "100%" in err and "200k" in err  # tqdm's bar, with the total from Content-Length


def test_pooch_streams_to_a_temp_file_and_renames_only_when_verified(
        loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Watch the downloader write: bytes go to a temporary name in the staging folder,
    never to the final path, which appears only complete."""
    import pooch

    fake_entry(monkeypatch, BODY)
    loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY)
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    written_to: list[str] = []
    real_call = pooch.HTTPDownloader.__call__

    def spy(self: pooch.HTTPDownloader, url: str, output_file: str, *args: object,
            **kwargs: object) -> object:
        written_to.append(str(output_file))
        result = real_call(self, url, output_file, *args, **kwargs)
        assert not target.exists(), "final file must not exist before verification"
        return result

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", spy)
    dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
             mirror=loopback.url, progress=False)
    assert len(written_to) == 1
    assert f"{os.sep}{dl.PARTIAL_DIR}{os.sep}" in written_to[0]
    assert Path(written_to[0]).name != target.name
    assert target.read_bytes() == BODY


# ---- failures ----------------------------------------------------------------------------
def test_checksum_mismatch_is_a_clear_error_and_keeps_nothing(
        loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry(monkeypatch, BODY)
    url = loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY[:-1] + b"!")  # one byte off
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
                 mirror=loopback.url, progress=False)
    msg = str(info.value)
    assert "checksum" in msg and url in msg and str(tmp_path / "mnist") in msg
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("checked", [True, False], ids=["with-hash", "no-hash-no-size"])
def test_truncated_transfer_leaves_nothing(loopback: Loopback, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           checked: bool) -> None:
    """The server promises all bytes (Content-Length) but closes after half of them."""
    fake_entry(monkeypatch, BODY, hashed=checked, sized=checked)
    url = loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY, mode="truncate")
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
                 mirror=loopback.url, progress=False)
    assert url in str(info.value) and str(tmp_path / "mnist") in str(info.value)
    assert files_under(tmp_path) == []
    # and a rerun against a healthy server succeeds
    loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY)
    got = dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
                   mirror=loopback.url, progress=False)
    assert got.read_bytes() == BODY


def test_offline_error_names_url_and_cache_folder(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry(monkeypatch, BODY)
    mirror = closed_port_url()
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
                 mirror=mirror, progress=False, timeout=5)
    msg = str(info.value)
    assert f"{mirror}/mnist/t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "mnist") in msg
    assert "offline" in msg and "path=" in msg and "mirror" in msg
    assert files_under(tmp_path) == []


def test_alternative_official_url_is_tried_when_the_first_fails(
        loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = fake_entry(monkeypatch, BODY)
    dead = closed_port_url() + "/t10k-labels-idx1-ubyte.gz"
    alive = loopback.serve("/alt/t10k-labels-idx1-ubyte.gz", BODY)
    monkeypatch.setitem(dl.MANIFEST["mnist"], entry.filename,
                        dl.dataclasses.replace(entry, url=dead, alt_urls=(alive,)))
    got = dl.fetch("mnist", entry.filename, root=tmp_path, download=True, progress=False,
                   timeout=5)
    assert got.read_bytes() == BODY and loopback.count("/alt/t10k-labels-idx1-ubyte.gz") == 1
    # when every source fails, the error lists each URL
    monkeypatch.setitem(dl.MANIFEST["mnist"], entry.filename,
                        dl.dataclasses.replace(entry, url=dead, alt_urls=(dead + "?2",)))
    with pytest.raises(dl.DownloadError, match="every source failed") as info:
        dl.fetch("mnist", entry.filename, root=tmp_path / "b", download=True, progress=False,
                 timeout=5)
    assert str(info.value).count(dead) == 2 and str(tmp_path / "b" / "mnist") in str(info.value)


def test_http_error_is_wrapped(loopback: Loopback, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry(monkeypatch, BODY)
    with pytest.raises(dl.DownloadError, match="404"):
        dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
                 mirror=loopback.url, progress=False)
    assert files_under(tmp_path) == []


def test_missing_without_download_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(dl.DownloadRequiredError) as info:
        dl.fetch("mnist", "train-images-idx3-ubyte.gz", root=tmp_path)
    msg = str(info.value)
    assert "download=True" in msg and "9.9 MB" in msg
    assert dl.MANIFEST["mnist"]["train-images-idx3-ubyte.gz"].url in msg
    assert not (tmp_path / "mnist").exists()  # asking creates nothing


def test_bad_names_are_value_errors() -> None:
    with pytest.raises(ValueError, match="dataset.*mnist"):
        dl.fetch("mnits", "x")
    with pytest.raises(ValueError, match="filename.*t10k"):
        dl.fetch("mnist", "nope.gz")


# ---- a transfer killed mid-way -------------------------------------------------------------
def test_killed_transfer_leaves_no_final_file_and_rerun_succeeds(
        loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = fake_entry(monkeypatch, BODY)
    loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY, mode="slow")
    script = textwrap.dedent(f"""
        from dml_kit.data import download as dl
        dl.MANIFEST["mnist"]["t10k-labels-idx1-ubyte.gz"] = dl.RemoteFile(
            "mnist", "t10k-labels-idx1-ubyte.gz", "https://example.invalid/x",
            {entry.size}, {entry.known_hash!r})
        dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root={str(tmp_path)!r},
                 download=True, mirror={loopback.url!r}, progress=False)
        print("finished")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(dl.MIRROR_ENV, None)
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = tmp_path / "mnist" / dl.PARTIAL_DIR
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # wait until some bytes reached the disk
            if sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()) > 0 \
                    if staging.exists() else False:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        else:
            pytest.fail("the download never started writing")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert not target.exists()
    # only the dead process's staging folder is left: nothing under a final name
    leftovers = files_under(tmp_path / "mnist")
    assert leftovers and all(f.startswith(dl.PARTIAL_DIR + os.sep) for f in leftovers)
    assert not dl.is_cached("mnist", "t10k-labels-idx1-ubyte.gz", tmp_path)
    # the rerun cleans the dead staging folder and downloads afresh
    loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY)
    got = dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
                   mirror=loopback.url, progress=False)
    assert got.read_bytes() == BODY
    assert files_under(tmp_path) == ["mnist/t10k-labels-idx1-ubyte.gz"]


# ---- local copies and mirrors ----------------------------------------------------------------
def test_path_points_at_an_existing_copy(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry(monkeypatch, BODY)
    copy = tmp_path / "mine" / "t10k-labels-idx1-ubyte.gz"
    copy.parent.mkdir()
    copy.write_bytes(BODY)
    cache = tmp_path / "cache"
    assert dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=cache, path=copy) == copy
    assert dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=cache, path=copy.parent) == copy
    assert not cache.exists()  # used in place, nothing copied
    copy.write_bytes(BODY[:-1] + b"?")
    with pytest.raises(dl.DownloadError, match="checksum.*verify=False"):
        dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", path=copy)
    assert dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", path=copy, verify=False) == copy
    with pytest.raises(dl.DownloadError, match="does not exist"):
        dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", path=tmp_path / "nowhere.gz")


def test_recompressed_copy_is_judged_by_its_content(tmp_path: Path) -> None:
    """A re-gzipped copy of the official content is accepted (content md5 in the manifest)."""
    import gzip

    entry = dl.MANIFEST["mnist"]["t10k-labels-idx1-ubyte.gz"]
    assert entry.content_md5 is not None
    fake = tmp_path / entry.filename
    fake.write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(dl.DownloadError):
        dl.fetch("mnist", entry.filename, path=fake)


def test_local_folder_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry(monkeypatch, BODY)
    mirror = tmp_path / "usb"
    (mirror / "mnist").mkdir(parents=True)
    (mirror / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(BODY)
    got = dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path / "cache",
                   download=True, mirror=str(mirror))
    assert got == tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert got.read_bytes() == BODY
    # a corrupt mirror copy is refused and nothing is kept
    (mirror / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"junk")
    with pytest.raises(dl.DownloadError, match="mirror"):
        dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path / "other",
                 download=True, mirror=f"file://{mirror}")
    assert files_under(tmp_path / "other") == []


def test_stale_staging_of_dead_process_is_removed(loopback: Loopback, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry(monkeypatch, BODY)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / "mnist" / dl.PARTIAL_DIR / f"{dead.stdout.strip()}-abcd"
    stale.mkdir(parents=True)
    (stale / "tmpxyz").write_bytes(BODY[:1000])
    loopback.serve("/mnist/t10k-labels-idx1-ubyte.gz", BODY)
    dl.fetch("mnist", "t10k-labels-idx1-ubyte.gz", root=tmp_path, download=True,
             mirror=loopback.url, progress=False)
    assert files_under(tmp_path) == ["mnist/t10k-labels-idx1-ubyte.gz"]


# ---- the manifest ---------------------------------------------------------------------------
def test_manifest_is_well_formed() -> None:
    hash_re = re.compile(r"^(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})$")
    assert {"mnist", "fashion_mnist", "omniglot", "isolet", "cub200", "cars196",
            "sop"} <= set(dl.MANIFEST)
    for dataset, files in dl.MANIFEST.items():
        for name, e in files.items():
            assert (e.dataset, e.filename) == (dataset, name)
            for url in (e.url, *e.alt_urls):
                assert url.startswith(("https://", "http://", "ftp://"))
                assert url.rsplit("/", 1)[-1] == name
            assert e.known_hash is None or hash_re.match(e.known_hash), e
            assert e.size is None or e.size > 0
    # the Omniglot hashes are the ones recorded in shared/data/omniglot/SOURCE.md
    omni = dl.MANIFEST["omniglot"]
    assert omni["images_background.zip"].known_hash.endswith("ad41ab679c8b5d90b271ef46be69"
                                                             "87cc81211774a695c29dcc5367b2b26ee640")
    assert omni["images_background.zip"].size == 9_464_212


def test_describe_lists_sizes_and_urls() -> None:
    text = dl.describe("omniglot", ["images_background.zip", "images_evaluation.zip"])
    assert "15.9 MB" in text and "images_evaluation.zip (6.5 MB)" in text
    assert "raw.githubusercontent.com/brendenlake/omniglot" in text
    assert "size unknown" in dl.describe("isolet")
