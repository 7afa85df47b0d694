"""Real-dataset loaders: parsers fed with small files in each dataset's real format, served
by a loopback HTTP server; then the real files of ../shared/data where they exist.

No test reaches the internet; tests of the shared files skip with the reason when absent.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dml_kit.data import download as dl
from dml_kit.data import load as load_dataset
from dml_kit.data import real

# the loopback server and helpers live in test_download.py
_spec = importlib.util.spec_from_file_location("_dml_kit_test_download",
                                               Path(__file__).with_name("test_download.py"))
assert _spec is not None and _spec.loader is not None
_td = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_td)
loopback = _td.loopback
Loopback = _td.Loopback
files_under = _td.files_under
closed_port_url = _td.closed_port_url

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)


def publish(loopback: Loopback, monkeypatch: pytest.MonkeyPatch, dataset: str,
            files: dict[str, bytes]) -> None:
    """Serve ``files`` as ``/<dataset>/<name>`` and point the manifest at their checksums."""
    for name, body in files.items():
        loopback.serve(f"/{dataset}/{name}", body)
        entry = dl.RemoteFile(dataset, name, f"https://example.invalid/{name}", len(body),
                              f"sha256:{hashlib.sha256(body).hexdigest()}")
        monkeypatch.setitem(dl.MANIFEST[dataset], name, entry)


# ---- makers of files in the real formats -----------------------------------------------------
def idx_gz(array: np.ndarray) -> bytes:
    """IDX: 0, 0, type 0x08 (uint8), ndim, big-endian sizes, data; then gzip."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def mnist_files(n_train: int = 30, n_test: int = 20, seed: int = 0
                ) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    arrays = {"train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_y": np.arange(n_train, dtype=np.uint8) % 10,
              "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_y": (np.arange(n_test, dtype=np.uint8) * 3) % 10}
    files = {"train-images-idx3-ubyte.gz": idx_gz(arrays["train_x"]),
             "train-labels-idx1-ubyte.gz": idx_gz(arrays["train_y"]),
             "t10k-images-idx3-ubyte.gz": idx_gz(arrays["test_x"]),
             "t10k-labels-idx1-ubyte.gz": idx_gz(arrays["test_y"])}
    return files, arrays


def glyph_png(seed: int) -> bytes:
    """A 105x105 mode-"1" PNG: white background, a black stroke (as Omniglot's)."""
    rng = np.random.default_rng(seed)
    img = np.ones((105, 105), dtype=bool)
    r, c = rng.integers(10, 60, 2)
    img[r:r + 40, c:c + 8] = False
    buf = io.BytesIO()
    Image.fromarray(img).convert("1").save(buf, format="PNG")
    return buf.getvalue()


OMNI_ALPHABETS = {"background": {"Alpha_(test)": 3, "Beta": 2},
                  "evaluation": {"Gamma": 2}}


def omniglot_zip(split: str, first_id: int, drawers: int = 4) -> tuple[bytes, int]:
    """``images_<split>/<Alphabet>/characterNN/<id>_<drawer>.png``, like the official zips."""
    buf = io.BytesIO()
    cid = first_id
    with zipfile.ZipFile(buf, "w") as zf:
        for alphabet, n_chars in OMNI_ALPHABETS[split].items():
            for k in range(1, n_chars + 1):
                for d in range(1, drawers + 1):
                    zf.writestr(f"images_{split}/{alphabet}/character{k:02d}/{cid:04d}_{d:02d}.png",
                                glyph_png(cid * 100 + d))
                cid += 1
    return buf.getvalue(), cid


def one_shot_zip(n_runs: int = 2, n_way: int = 4) -> bytes:
    """``runNN/{training/classKK,test/itemMM}.png`` and ``runNN/class_labels.txt``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for r in range(1, n_runs + 1):
            run = f"run{r:02d}"
            lines = []
            for k in range(1, n_way + 1):
                zf.writestr(f"{run}/training/class{k:02d}.png", glyph_png(1000 * r + k))
                target = (k * 3) % n_way + 1  # item k shows class `target`
                zf.writestr(f"{run}/test/item{k:02d}.png", glyph_png(1000 * r + target))
                lines.append(f"{run}/test/item{k:02d}.png {run}/training/class{target:02d}.png")
            zf.writestr(f"{run}/class_labels.txt", "\n".join(lines) + "\n")
    return buf.getvalue()


def lzw_compress(data: bytes, maxbits: int = 16) -> bytes:
    """Unix ``compress`` (.Z) encoder, block mode; CLEAR when the table is full.

    Mirrors compress 4.x: after each code, if the next entry needs a wider code (or a
    CLEAR was written), the current group of 8 codes is padded and the width changes.
    """
    out = bytearray(b"\x1f\x9d" + bytes([0x80 | maxbits]))
    maxmaxcode = 1 << maxbits
    table = {bytes([i]): i for i in range(256)}
    free_ent, n_bits = 257, 9
    maxcode = (1 << n_bits) - 1
    acc = nacc = group_bits = 0

    def emit(code: int, clearing: bool = False) -> None:
        nonlocal acc, nacc, group_bits, n_bits, maxcode
        acc |= code << nacc
        nacc += n_bits
        group_bits += n_bits
        if clearing or free_ent > maxcode:
            nacc += (-group_bits) % (n_bits * 8)
            group_bits = 0
            if clearing:
                n_bits, maxcode = 9, (1 << 9) - 1
            else:
                n_bits += 1
                maxcode = maxmaxcode if n_bits == maxbits else (1 << n_bits) - 1
        while nacc >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nacc -= 8

    if not data:
        return bytes(out)
    w = data[:1]
    for b in data[1:]:
        wc = w + bytes([b])
        if wc in table:
            w = wc
            continue
        emit(table[w])
        if free_ent < maxmaxcode:
            table[wc] = free_ent
            free_ent += 1
        else:
            table = {bytes([i]): i for i in range(256)}
            free_ent = 257
            emit(256, clearing=True)
        w = bytes([b])
    emit(table[w])
    if nacc:
        out.append(acc & 0xFF)
    return bytes(out)


def isolet_text(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """UCI Isolet lines: 617 features in [-1, 1] then the class as ``k.``."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(-1, 1, (n, 617)), 4).astype(np.float32)
    y = np.arange(n) % 26
    lines = [", ".join(f"{v:.4f}" for v in row) + f", {k + 1}." for row, k in zip(x, y,
                                                                                 strict=True)]
    return ("\n".join(lines) + "\n").encode(), x, y


def isolet_zip(n_train: int = 52, n_test: int = 26) -> tuple[bytes, np.ndarray, np.ndarray]:
    t1, x1, y1 = isolet_text(n_train, 1)
    t5, x5, y5 = isolet_text(n_test, 5)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("isolet1+2+3+4.data.Z", lzw_compress(t1, maxbits=12))
        zf.writestr("isolet5.data.Z", lzw_compress(t5))
    return buf.getvalue(), np.concatenate([x1, x5]), np.concatenate([y1, y5])


def jpeg(seed: int, shape: tuple[int, int] = (40, 60)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


# ---- MNIST / Fashion-MNIST -----------------------------------------------------------------------
def test_mnist_download_parse_and_cache(loopback: Loopback, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    files, arrays = mnist_files()
    publish(loopback, monkeypatch, "mnist", files)
    data = real.mnist(download=True, root=tmp_path, mirror=loopback.url)
    assert len(data) == 50 and data.input_shape == (1, 28, 28) and data.n_classes == 10
    assert data.x.dtype == torch.float32 and 0.0 <= float(data.x.min()) <= float(data.x.max()) <= 1
    expected = np.concatenate([arrays["train_x"], arrays["test_x"]])
    assert torch.equal((data.x[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(expected))
    assert data.y.tolist() == np.concatenate([arrays["train_y"], arrays["test_y"]]).tolist()
    assert len(loopback.requests) == 4
    # second load: from the parsed cache, no request even with the server gone
    again = real.mnist(root=tmp_path, mirror=closed_port_url())
    assert torch.equal(again.x, data.x) and torch.equal(again.y, data.y)
    assert len(loopback.requests) == 4
    test = real.mnist(part="test", root=tmp_path)
    assert len(test) == 20 and test.name == "mnist[test]"
    assert len(loopback.requests) == 4  # parsed from the cached raw files
    assert not any(dl.PARTIAL_DIR in f for f in files_under(tmp_path))


def test_mnist_without_download_explains(tmp_path: Path) -> None:
    with pytest.raises(dl.DownloadRequiredError) as info:
        real.mnist(root=tmp_path)
    msg = str(info.value)
    assert "download=True" in msg and "train-images-idx3-ubyte.gz (9.9 MB)" in msg
    assert "11.6 MB" in msg  # the total of the four files
    with pytest.raises(ValueError, match="part.*all, train, test"):
        real.mnist(part="validation", root=tmp_path)


def test_fashion_mnist_from_debian_package_without_download(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, arrays = mnist_files(seed=3)
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    debian.mkdir()
    for name, body in files.items():
        (debian / name).write_bytes(body)
    monkeypatch.setattr(real.mnist_idx, "DEBIAN_FASHION_MNIST", debian)
    data = real.fashion_mnist(root=tmp_path / "cache", mirror=closed_port_url())
    assert len(data) == 50 and data.class_names[0] == "T-shirt/top"
    assert set(data.groups) == {"clothing", "shoes", "bag"}


def test_read_idx_rejects_truncated_file(tmp_path: Path) -> None:
    body = gzip.decompress(idx_gz(np.zeros((5, 28, 28), dtype=np.uint8)))
    p = tmp_path / "cut.idx"
    p.write_bytes(body[:-10])
    with pytest.raises(ValueError, match="truncated"):
        real.read_idx(p)


# ---- Omniglot ------------------------------------------------------------------------------
def test_omniglot_zips_download_and_parse(loopback: Loopback, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bg, next_id = omniglot_zip("background", 1)
    ev, _ = omniglot_zip("evaluation", next_id)
    publish(loopback, monkeypatch, "omniglot",
            {"images_background.zip": bg, "images_evaluation.zip": ev})
    data = real.omniglot(download=True, root=tmp_path, mirror=loopback.url)
    assert data.n_classes == 7 and len(data) == 28 and data.input_shape == (1, 28, 28)
    assert data.class_names[0] == "Alpha_(test)/character01"
    assert data.groups == ("Alpha_(test)", "Beta", "Gamma")
    # strokes bright on a dark background
    assert float(data.x[:, :, 0, 0].max()) < 0.05 and float(data.x.amax(dim=(1, 2, 3)).min()) > 0.9
    bgd = real.omniglot_background(root=tmp_path)  # its own cache entry, files already here
    assert bgd.n_classes == 5 and bgd.name == "omniglot_background"
    assert real.omniglot_evaluation(root=tmp_path, size=14).input_shape == (1, 14, 14)
    assert len(loopback.requests) == 2
    with pytest.raises(ValueError, match="split"):
        real.omniglot("test", root=tmp_path)


def test_omniglot_parser_counts_and_dedupes(tmp_path: Path) -> None:
    bg, _ = omniglot_zip("background", 1, drawers=3)
    p = tmp_path / "images_background.zip"
    p.write_bytes(bg)
    parsed = real.parse_omniglot_zips([p, p])  # the same images twice are kept once
    assert parsed.counts() == {"alphabets": 2, "characters": 5, "drawers": 3, "images": 15}
    assert parsed.char_ids.tolist() == [1, 2, 3, 4, 5]


def test_rotated_omniglot_is_cached_and_named(loopback: Loopback, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from dml_kit import data

    bg, next_id = omniglot_zip("background", 1)
    ev, _ = omniglot_zip("evaluation", next_id)
    publish(loopback, monkeypatch, "omniglot",
            {"images_background.zip": bg, "images_evaluation.zip": ev})
    rot = data.load("omniglot", rotations=True, download=True, root=tmp_path,
                    mirror=loopback.url)
    assert rot.name == "omniglot_rotated" and rot.n_classes == 4 * 7 and len(rot) == 4 * 28
    assert rot.class_names[:2] == ("Alpha_(test)/character01", "Alpha_(test)/character02")
    assert rot.class_names[7] == "Alpha_(test)/character01@90"
    assert rot.class_names[27] == "Gamma/character02@270"
    assert rot.class_groups == data.load("omniglot", root=tmp_path).class_groups * 4
    folder = tmp_path / "omniglot"
    assert (folder / "omniglot-all-28px.npz").is_file()  # the plain cache, unchanged
    assert (folder / "omniglot-all-28px-rotated.npz").is_file()

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed again instead of reading the cache")

    monkeypatch.setattr(real.omniglot_files, "parse_omniglot_zips", boom)
    again = data.load("omniglot_rotated", root=tmp_path)
    assert torch.equal(again.x, rot.x) and again.class_names == rot.class_names
    assert len(loopback.requests) == 2
    with pytest.raises(ValueError, match="rotation"):
        data.load("omniglot", rotation=True, root=tmp_path)


def test_one_shot_runs_parse_and_evaluate(loopback: Loopback, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    publish(loopback, monkeypatch, "omniglot", {"all_runs.zip": one_shot_zip()})
    runs = real.omniglot_one_shot_runs(download=True, root=tmp_path, mirror=loopback.url)
    assert [r.name for r in runs] == ["run01", "run02"]
    assert runs[0].train_x.shape == (4, 1, 28, 28) and runs[0].test_x.shape == (4, 1, 28, 28)
    assert runs[0].test_y.tolist() == [(k * 3) % 4 for k in range(1, 5)]
    # test images are copies of their class's training image: pixels get every one right
    assert real.evaluate_one_shot_runs(lambda x: x.flatten(1), runs) == 0.0
    assert real.evaluate_one_shot_runs(lambda x: x.flatten(1) + 1, runs, distance="cosine") == 0
    # a constant embedding picks class 0 for every query: error = 1 - 1/4 here
    assert real.evaluate_one_shot_runs(lambda x: torch.zeros(len(x), 3), runs) == 0.75
    with pytest.raises(ValueError, match="distance"):
        real.evaluate_one_shot_runs(lambda x: x, runs, distance="manhattan")


# ---- Isolet ----------------------------------------------------------------------------------
def test_unlzw_round_trip() -> None:
    for data in (b"", b"a", b"abcabcabc" * 300, bytes(range(256)) * 50):
        for maxbits in (9, 12, 16):
            assert real.unlzw(lzw_compress(data, maxbits)) == data
    with pytest.raises(ValueError, match="magic"):
        real.unlzw(b"PK\x03\x04")


def test_isolet_download_parse_and_cache(loopback: Loopback, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    body, x, y = isolet_zip()
    monkeypatch.setattr(real.isolet_files, "ISOLET_ROWS", {"train": 52, "test": 26})
    publish(loopback, monkeypatch, "isolet", {"isolet.zip": body})
    data = real.isolet(download=True, root=tmp_path, mirror=loopback.url)
    assert data.input_shape == (617,) and len(data) == 78 and data.n_classes == 26
    assert data.class_names[:3] == ("A", "B", "C")
    np.testing.assert_allclose(data.x.numpy(), x, atol=1e-6)
    assert data.y.tolist() == y.tolist()
    assert len(real.isolet("test", root=tmp_path)) == 26
    assert len(real.isolet("train", root=tmp_path)) == 52
    assert len(loopback.requests) == 1


def test_isolet_pure_python_decoder_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a system gzip the kit's own LZW decoder does the job."""
    monkeypatch.setattr(real.lzw.shutil, "which", lambda name: None)
    body, x, _ = isolet_zip(26, 26)
    p = tmp_path / "isolet.zip"
    p.write_bytes(body)
    data = real.isolet(path=p, verify=False)
    np.testing.assert_allclose(data.x.numpy(), x, atol=1e-6)


def _cached_isolet(root: Path, body: bytes) -> Path:
    folder = root / "isolet"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "isolet.zip").write_bytes(body)
    return folder / "isolet.zip"


def test_isolet_html_page_cached_as_zip_names_path_and_remedy(tmp_path: Path) -> None:
    """An HTML error page saved as isolet.zip: a DownloadError naming the file and the
    remedy, never a bare BadZipFile; nothing is recorded or cached."""
    zp = _cached_isolet(tmp_path, b"<!DOCTYPE html><html><body>503 Service Unavailable")
    for call in (lambda: real.isolet(root=tmp_path), lambda: load_dataset("isolet", root=tmp_path),
                 lambda: real.isolet("test", root=tmp_path)):
        with pytest.raises(dl.DownloadError) as info:
            call()
        message = str(info.value)
        assert str(zp) in message and "Delete" in message and "download=True" in message
        assert "HTML" in message
    assert not dl.record_path(zp).exists()
    assert not list((tmp_path / "isolet").glob("*.npz"))


def test_isolet_truncated_zip_names_path(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    body, _, _ = isolet_zip()
    zp = _cached_isolet(tmp_path, body[: len(body) // 2])  # zip magic, no central directory
    with pytest.raises(dl.DownloadError, match="isolet.zip is not a usable copy") as info:
        real.isolet(root=tmp_path)
    assert str(zp) in str(info.value) and "BadZipFile" in str(info.value)


def test_isolet_structure_checked_then_sha256_recorded_and_rechecked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body, _, _ = isolet_zip()
    zp = _cached_isolet(tmp_path, body)
    # the official row counts are checked on first use: a 52 + 26 row zip is refused
    with pytest.raises(dl.DownloadError, match="6,238"):
        real.isolet(root=tmp_path)
    assert dl.recorded_sha256(zp) is None
    monkeypatch.setattr(real.isolet_files, "ISOLET_ROWS", {"train": 52, "test": 26})
    assert len(real.isolet("test", root=tmp_path)) == 26
    assert dl.recorded_sha256(zp) == dl.file_hash(zp)       # recorded on first parse
    assert dl.check_recorded_sha256(zp) is True
    # a later change of the cached file is caught on the next load that reads it
    (tmp_path / "isolet" / "isolet-train.npz").unlink(missing_ok=True)
    zp.write_bytes(body + b"tampered")
    with pytest.raises(dl.DownloadError, match="changed since it was verified") as info:
        real.isolet("train", root=tmp_path)
    assert str(zp) in str(info.value) and "delete" in str(info.value)


def test_every_manifest_entry_is_verified() -> None:
    """A published hash, or (Isolet) a documented structural check + recorded sha256."""
    for dataset, files in dl.MANIFEST.items():
        for name, entry in files.items():
            assert entry.known_hash or entry.verified_by, f"{dataset}/{name} has no hash"
            if entry.known_hash:
                algorithm, _, digest = entry.known_hash.partition(":")
                assert algorithm in ("sha256", "md5") and len(digest) in (64, 32)
    assert "6,238" in dl.MANIFEST["isolet"]["isolet.zip"].verified_by


def test_isolet_text_errors() -> None:
    with pytest.raises(ValueError, match="617"):
        real.parse_isolet_text("1, 2, 3.\n")


# ---- CUB-200-2011 / Cars196 / SOP ----------------------------------------------------------
def test_cub200_download_resize_and_cache(loopback: Loopback, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Warbler"]
    members: dict[str, bytes] = {}
    images, labels = [], []
    for i in range(1, 7):
        c = (i - 1) % 3 + 1
        rel = f"{classes[c - 1]}/img_{i:03d}.jpg"
        members[f"CUB_200_2011/images/{rel}"] = jpeg(i)
        images.append(f"{i} {rel}")
        labels.append(f"{i} {c}")
    members["CUB_200_2011/images.txt"] = "\n".join(images).encode()
    members["CUB_200_2011/image_class_labels.txt"] = "\n".join(labels).encode()
    members["CUB_200_2011/classes.txt"] = "\n".join(
        f"{k} {n}" for k, n in enumerate(classes, 1)).encode()
    publish(loopback, monkeypatch, "cub200", {"CUB_200_2011.tgz": tar_gz(members)})
    with pytest.raises(dl.DownloadRequiredError, match="download=True"):
        real.cub200(root=tmp_path)
    data = real.cub200(download=True, root=tmp_path, mirror=loopback.url, size=8,
                       progress=False)
    assert data.input_shape == (3, 8, 8) and len(data) == 6
    assert data.y.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.class_names == ("Black_footed_Albatross", "Laysan_Albatross", "Sooty_Warbler")
    assert data.groups == ("Albatross", "Warbler")
    assert (tmp_path / "cub200" / "cub200-8px.npz").is_file()
    assert torch.equal(real.cub200(root=tmp_path, size=8).x, data.x)
    assert len(loopback.requests) == 1


def test_cars196_download(loopback: Loopback, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.io import savemat

    members = {f"car_ims/{i:06d}.jpg": jpeg(i) for i in range(1, 5)}
    annos = np.zeros((1, 4), dtype=[("relative_im_path", "O"), ("class", "O"), ("test", "O")])
    for i in range(4):
        annos[0, i] = (f"car_ims/{i + 1:06d}.jpg", np.array([[i % 2 + 1]], dtype=np.uint8),
                       np.array([[i // 2]], dtype=np.uint8))
    buf = io.BytesIO()
    savemat(buf, {"annotations": annos,
                  "class_names": np.array([["Audi A4 2010", "BMW X5 2011"]], dtype=object)})
    publish(loopback, monkeypatch, "cars196",
            {"car_ims.tgz": tar_gz(members), "cars_annos.mat": buf.getvalue()})
    data = real.cars196(download=True, root=tmp_path, mirror=loopback.url, size=6,
                        progress=False)
    assert data.input_shape == (3, 6, 6) and data.y.tolist() == [0, 1, 0, 1]
    assert data.class_names == ("Audi A4 2010", "BMW X5 2011")
    assert data.groups == ("Audi", "BMW")


def test_sop_download(loopback: Loopback, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    rows = ["image_id class_id super_class_id path"]
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (cls, sup, folder) in enumerate([(7, 1, "bicycle_final"), (7, 1, "bicycle_final"),
                                                (3, 2, "chair_final"), (3, 2, "chair_final")], 1):
            rel = f"{folder}/{cls}_{i}.JPG"
            zf.writestr(f"Stanford_Online_Products/{rel}", jpeg(i))
            rows.append(f"{i} {cls} {sup} {rel}")
        zf.writestr("Stanford_Online_Products/Ebay_info.txt", "\n".join(rows) + "\n")
    publish(loopback, monkeypatch, "sop", {"Stanford_Online_Products.zip": buf.getvalue()})
    data = real.sop(download=True, root=tmp_path, mirror=loopback.url, size=5, progress=False)
    assert data.input_shape == (3, 5, 5) and data.y.tolist() == [1, 1, 0, 0]
    assert data.class_names == ("chair/3", "bicycle/7") and data.groups == ("chair", "bicycle")


# ---- the registry ------------------------------------------------------------------------------
def test_registered_with_the_data_registry(loopback: Loopback, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import dml_kit.data as data_pkg

    if not hasattr(data_pkg, "load") or not hasattr(data_pkg, "available"):
        pytest.skip("dml_kit.data.load / available() do not exist yet")
    assert set(real.LOADERS) <= set(data_pkg.available())
    files, _ = mnist_files()
    publish(loopback, monkeypatch, "mnist", files)
    monkeypatch.setenv(dl.MIRROR_ENV, loopback.url)
    with pytest.raises(dl.DownloadRequiredError):
        data_pkg.load("mnist", root=tmp_path)
    assert len(data_pkg.load("mnist", download=True, root=tmp_path)) == 50


# ---- the real files in ../shared/data -----------------------------------------------------------
def shared(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data file {p} is absent (the shared offline copy is not here)")
    return p


def test_shared_omniglot_small_background_zips() -> None:
    small1 = shared("omniglot", "images_background_small1.zip")
    small2 = shared("omniglot", "images_background_small2.zip")
    with zipfile.ZipFile(small1) as zf:  # count the archive's own entries, independently
        pngs1 = [n for n in zf.namelist() if n.endswith(".png")]
    both = real.parse_omniglot_zips([small1, small2])
    # numbers from shared/data/omniglot/SOURCE.md (Greek and Latin are in both zips)
    assert len(pngs1) == 2720
    assert both.counts() == {"alphabets": 8, "characters": 242, "drawers": 20, "images": 4840}
    per_alphabet = {g: both.class_groups.count(g) for g in set(both.class_groups)}
    assert per_alphabet == {"Balinese": 24, "Early_Aramaic": 22, "Greek": 24, "Korean": 40,
                            "Latin": 26, "Japanese_(katakana)": 47, "Sanskrit": 42,
                            "Tagalog": 17}
    data = both.to_dataset("omniglot_small")
    assert data.input_shape == (1, 28, 28) and data.min_class_size == 20


def test_shared_omniglot_npz_matches_the_official_pngs() -> None:
    table = shared("omniglot", "omniglot_alphabets.csv")
    bg = real.parse_omniglot_npz(shared("omniglot", "omniglot_images_background.npz"), table)
    assert bg.counts() == {"alphabets": 30, "characters": 964, "drawers": 20, "images": 19280}
    small = real.parse_omniglot_zips(shared("omniglot", "images_background_small1.zip"))
    rows = {c: i for i, c in enumerate(bg.char_ids.tolist())}
    for k, cid in enumerate(small.char_ids.tolist()):  # same parser path, same pixels, names
        i = rows[cid]
        assert bg.class_names[i] == small.class_names[k]
        assert np.array_equal(bg.images[bg.labels == i], small.images[small.labels == k])


def test_shared_omniglot_full_set_through_the_loader() -> None:
    shared("omniglot", "omniglot_images_evaluation.npz")
    data = real.omniglot(path=shared("omniglot"))
    assert data.n_classes == 1623 and len(data) == 32460 and len(data.groups) == 50
    assert data.min_class_size == 20 and data.class_counts.max() == 20
    assert data.class_names[0] == "Arcadian/character01"
    assert data.class_names[964] == "Angelic/character01"  # evaluation set follows
    assert len(set(data.class_groups[964:])) == 20


def test_shared_omniglot_one_shot_runs() -> None:
    runs = real.omniglot_one_shot_runs(path=shared("omniglot", "all_runs.zip"))
    assert len(runs) == 20 and [r.name for r in runs] == [f"run{i:02d}" for i in range(1, 21)]
    for run in runs:
        assert run.train_x.shape == (20, 1, 28, 28) and run.test_x.shape == (20, 1, 28, 28)
        assert sorted(run.test_y.tolist()) == list(range(20))  # one query per class
    # raw pixels, nearest neighbour: far above chance-level accuracy (5%), far from good
    err = real.evaluate_one_shot_runs(lambda x: x.flatten(1), runs)
    assert 0.5 < err < 0.95


def test_manifest_checksums_match_the_shared_official_files(tmp_path: Path) -> None:
    """The shared all_runs.zip is the unchanged official file: size and sha256 verify;
    the shared MNIST/Fashion files are re-gzipped: they verify on their decompressed md5.
    Used as a local mirror folder, they fill a cache like a download would."""
    runs = shared("omniglot", "all_runs.zip")
    assert dl.fetch("omniglot", "all_runs.zip", path=runs) == runs
    got = dl.fetch("omniglot", "all_runs.zip", root=tmp_path, download=True,
                   mirror=str(SHARED))
    assert got == tmp_path / "omniglot" / "all_runs.zip"
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                 "train-labels-idx1-ubyte.gz"):
        dl.fetch("mnist", name, path=shared("mnist", name))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        dl.fetch("fashion_mnist", name, path=shared("fashion-mnist", name))


def test_shared_mnist_test_set() -> None:
    data = real.mnist(part="test", path=shared("mnist"))
    assert len(data) == 10_000
    assert data.class_counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    labels = real.read_idx(shared("mnist", "train-labels-idx1-ubyte.gz"))
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                            5851, 5949]


def test_shared_fashion_mnist_test_set() -> None:
    data = real.fashion_mnist(part="test", path=shared("fashion-mnist"))
    assert len(data) == 10_000 and data.class_counts.tolist() == [1000] * 10


def test_shared_isolet_subset() -> None:
    data = real.isolet(path=shared("isolet", "isolet1_subset_cai.mat"))
    assert data.input_shape == (617,) and len(data) == 1560
    assert data.class_counts.tolist() == [60] * 26
    assert -1.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0


# ---- rotated Omniglot on the real files (Adapted Deep Embeddings' 6,492 classes) ---------------
OMNI_FILES = ("omniglot_images_background.npz", "omniglot_images_evaluation.npz",
              "omniglot_alphabets.csv")
OMNI_ABSENT = [f for f in OMNI_FILES if not (SHARED / "omniglot" / f).exists()]
needs_omniglot = pytest.mark.skipif(
    bool(OMNI_ABSENT), reason=f"real Omniglot files absent from {SHARED / 'omniglot'}: "
                              f"{', '.join(OMNI_ABSENT)} (the shared offline copy is not here)")


@pytest.fixture(scope="module")
def rotated_omniglot():
    from dml_kit import data

    return data.load("omniglot_rotated", path=SHARED / "omniglot")


@needs_omniglot
def test_shared_rotated_omniglot_counts(rotated_omniglot) -> None:
    rot = rotated_omniglot
    assert rot.n_classes == 1_623 * 4 == 6_492 and len(rot) == 6_492 * 20
    assert rot.class_counts.tolist() == [20] * 6_492  # 20 drawers per rotated class
    assert len(rot.groups) == 50  # groups stay the alphabets
    assert len(set(rot.class_names)) == 6_492


@needs_omniglot
def test_shared_rotations_are_distinct_classes_and_exact_rot90(rotated_omniglot) -> None:
    rot = rotated_omniglot
    for c in (0, 700, 1_622):
        base = rot.x[rot.y == c]
        names = [rot.class_names[c + r * 1_623] for r in range(4)]
        assert names == [names[0], f"{names[0]}@90", f"{names[0]}@180", f"{names[0]}@270"]
        assert len({rot.class_groups[c + r * 1_623] for r in range(4)}) == 1
        for r in range(1, 4):
            turned = rot.x[rot.y == c + r * 1_623]
            assert torch.equal(turned, torch.rot90(base, r, dims=(2, 3)))
            assert not torch.equal(turned, base)


@needs_omniglot
def test_shared_plain_omniglot_is_unchanged(rotated_omniglot) -> None:
    plain = real.omniglot(path=SHARED / "omniglot")
    assert plain.name == "omniglot" and plain.n_classes == 1_623 and len(plain) == 32_460
    assert "@" not in "".join(plain.class_names)
    head = rotated_omniglot.y < 1_623
    assert torch.equal(rotated_omniglot.x[head], plain.x)
    assert rotated_omniglot.class_names[:1_623] == plain.class_names


@needs_omniglot
def test_shared_paper_split_ignores_alphabets_and_divisions(rotated_omniglot) -> None:
    """``SourceSpec(kind="paper", by="class")`` splits random classes: the target half mixes
    background and evaluation alphabets, and a character's rotations land on both sides."""
    from dml_kit.data import domain_split

    split = domain_split(rotated_omniglot, target_fraction=0.5, by="class", seed=0)
    assert split.target.n_classes == split.source.n_classes == 3_246
    bg = set(real.omniglot_background(path=SHARED / "omniglot").groups)
    target_groups = set(split.target.groups)
    assert target_groups & bg and target_groups - bg
    plain_names = {n.split("@")[0] for n in split.target.class_names}
    assert plain_names & {n.split("@")[0] for n in split.source.class_names}
