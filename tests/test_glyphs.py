"""The glyph set: size targets, no empty or duplicate classes, fixed em size, the cache,
determinism of the generator."""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch

import dml_kit.data as data
from dml_kit.data import Dataset, paths
from dml_kit.data import glyphs as G


@pytest.fixture(scope="module")
def glyph_set() -> Dataset:
    """The cached glyph set (generated into the data folder on first use)."""
    return data.load("glyphs")


@pytest.fixture(scope="module")
def cached(glyph_set: Dataset) -> dict[str, np.ndarray]:
    """The arrays of the cache file behind ``glyph_set``."""
    with np.load(G.cache_file(G.cache_name())) as arrays:
        return {key: arrays[key] for key in arrays.files if key != "x"}


# ---- the set as a whole ----------------------------------------------------------------
def test_size_targets(glyph_set: Dataset) -> None:
    assert glyph_set.name == "glyphs"
    assert glyph_set.x.shape[1:] == (1, 28, 28) and glyph_set.x.dtype == torch.float32
    assert glyph_set.n_classes >= 400
    assert len(glyph_set.groups) >= 12
    assert glyph_set.min_class_size >= 30
    sizes = {g: glyph_set.class_groups.count(g) for g in glyph_set.groups}
    assert sum(n >= 10 for n in sizes.values()) >= 12, sizes
    assert {"Latin", "Greek", "Cyrillic", "Armenian", "Georgian", "Hebrew", "Arabic",
            "Arrows", "Box drawing", "Math operators"} <= set(sizes)
    assert sizes["Latin"] == 52  # the whole alphabet, upper and lower case
    assert len(set(glyph_set.class_names)) == glyph_set.n_classes


def test_images_are_bright_ink_on_black_and_never_empty(glyph_set: Dataset) -> None:
    x = glyph_set.x.view(len(glyph_set), -1)
    assert float(x.min()) == 0.0
    assert torch.all(x.amax(dim=1) == 1.0)                    # brightest pixel is 1
    assert float(x.sum(dim=1).min()) >= 1.0                   # no empty rendering
    border = torch.cat([glyph_set.x[:, 0, 0], glyph_set.x[:, 0, -1]], dim=1)
    assert float(border.mean()) < 0.02                        # black background


def test_class_names_groups_and_fonts(glyph_set: Dataset, cached: dict) -> None:
    assert glyph_set.class_names[0] == "A U+0041"
    codepoints = cached["codepoints"].tolist()
    for name, cp, group in zip(glyph_set.class_names, codepoints, glyph_set.class_groups,
                               strict=True):
        assert name == G.class_name(cp) and G.group_of(cp) == group
    font = torch.from_numpy(cached["font"].astype(np.int64))
    for c in range(0, glyph_set.n_classes, 37):  # a sample of classes
        assert len(set(font[glyph_set.y == c].tolist())) >= G.MIN_FONTS
    assert tuple(cached["font_files"].tolist()) == G.FONT_FILES


def test_no_lookalike_classes(glyph_set: Dataset) -> None:
    """Homoglyphs across scripts appear once, as the Latin (or earlier) character."""
    present = {name.split(" U+")[1] for name in glyph_set.class_names}

    def has(char: str) -> bool:
        return f"{ord(char):04X}" in present

    homoglyphs = ["AΑА", "BΒВ", "EΕЕ", "HΗН", "KΚК", "MΜМ", "OΟО", "PΡР", "TΤТ", "XΧХ",
                  "CС", "aа", "eе", "oοо", "pрρ", "cс", "xх", "yу", "jј",
                  "\u003b\u037e", "\u00b7\u0387"]  # escaped: NFC would merge them
    for chars in homoglyphs:
        assert sum(has(c) for c in chars) <= 1, chars
        if chars[0].isascii() and chars[0].isalpha():
            assert has(chars[0]), chars  # the Latin letter is the one kept


def test_no_near_identical_clean_renderings(cached: dict) -> None:
    """Pairwise distances of the classes' clean mean renderings (softened): no pair is
    as close as true duplicates are (those score below ~0.03)."""
    means = G._soften(cached["clean_means"].astype(np.float32) / 255).reshape(
        len(cached["clean_means"]), -1)
    distance = G.duplicate_distance(means, means)
    np.fill_diagonal(distance, np.inf)
    assert float(distance.min()) > 0.03
    assert (means.sum(axis=1) > 1.0).all()  # no empty class either


def test_lookalike_distance_separates_same_and_different_shapes() -> None:
    assert G.lookalike_distance(ord("A"), ord("Α")) < 0.02          # Latin A, Greek Alpha
    assert G.lookalike_distance(ord("A"), ord("А")) < G.DUPLICATE_DISTANCE  # Cyrillic A
    assert G.lookalike_distance(ord("▏"), ord("▕")) < G.DUPLICATE_DISTANCE  # same bar
    assert G.lookalike_distance(ord("A"), ord("B")) > 0.5
    assert G.lookalike_distance(0x4DE7, 0x4DFF) > G.DUPLICATE_DISTANCE  # two hexagrams
    assert G.lookalike_distance(ord("A"), 0x4E00) == float("inf")  # no shared font


def test_fixed_em_size_keeps_relative_sizes(glyph_set: Dataset, cached: dict) -> None:
    index = {name.split(" ")[0]: i for i, name in enumerate(glyph_set.class_names)}

    def extent(char: str) -> tuple[int, int]:
        image = cached["clean_means"][index[char]] > 64
        rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
        return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1

    assert max(extent(".")) <= 4                  # a dot stays a dot
    assert extent("o")[0] < extent("O")[0] - 2    # lower case is smaller than upper case
    assert 12 <= extent("H")[0] <= 17             # capitals about 0.73 em of 19 px
    inked = cached["clean_means"] > 0
    heights = inked.any(axis=2).sum(axis=1)  # upper bound on each class's ink extent
    widths = inked.any(axis=1).sum(axis=1)
    assert max(heights.max(), widths.max()) <= G.MAX_EXTENT_PX + 1


def test_group_of() -> None:
    assert G.group_of(ord("A")) == "Latin"
    assert G.group_of(ord("é")) == "Latin extended"
    assert G.group_of(ord("7")) == "Numbers"
    assert G.group_of(ord("α")) == "Greek"
    assert G.group_of(0x03E2) == "Coptic"        # Coptic letters inside the Greek block
    assert G.group_of(ord("Ж")) == "Cyrillic"
    assert G.group_of(ord("→")) == "Arrows"
    assert G.group_of(ord("┼")) == "Box drawing"
    assert G.group_of(ord("×")) == "Math operators"
    for skipped in (0x0301, 0x0020, 0x00A0, 0x0007, 0x02B0, 0x005E, 0x4E00):
        assert G.group_of(skipped) is None, unicodedata.name(chr(skipped), hex(skipped))


# ---- small building blocks -------------------------------------------------------------
def test_duplicate_distance_hand_computed() -> None:
    a = np.array([[1.0, 0.0], [2.0, 0.0]])
    b = np.array([[0.0, 1.0], [1.0, 0.0]])
    expected = np.array([[np.sqrt(2), 0.0], [np.sqrt(5) / 2, 0.5]])
    assert np.allclose(G.duplicate_distance(a, b), expected, atol=1e-6)


def test_spread_and_centre() -> None:
    assert G._spread([1, 2, 3], 5) == [1, 2, 3]
    assert G._spread(list(range(10)), 4) == [0, 3, 6, 9]
    canvas = G._centre(np.full((2, 4), 7, dtype=np.uint8), 8)
    rows, cols = np.nonzero(canvas)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 4, 2, 5)


def test_augment_without_jitter_is_the_box_filtered_rendering() -> None:
    generator = torch.Generator().manual_seed(0)
    size = 28 * G.SUPERSAMPLE
    clean = torch.zeros(3, size, size)
    clean[:, 20:36, 24:30] = torch.rand(3, 1, 1, generator=generator) + 0.5
    clean = clean.clamp(max=1)
    params = G._jitter_params(3, generator)
    still = {k: torch.zeros_like(v) for k, v in params.items()}
    still["scale"] = torch.ones(3)
    still["aspect"] = torch.ones(3)
    out = G._augment(clean, still)
    expected = torch.nn.functional.avg_pool2d(clean.unsqueeze(1), G.SUPERSAMPLE).squeeze(1)
    expected = expected / expected.amax(dim=(1, 2), keepdim=True)
    assert out.shape == (3, 28, 28)
    assert torch.allclose(out, expected, atol=1e-5)
    jittered = G._augment(clean, params)
    assert not torch.allclose(jittered, expected, atol=1e-2)
    assert torch.equal(jittered, G._augment(clean, params))  # deterministic


# ---- the cache and the generator -------------------------------------------------------
def test_second_load_reads_the_cache(glyph_set: Dataset,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A second load renders nothing (its speed is a benchmark's business, not a test's)."""
    def no_render(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached glyph set was rendered again")

    monkeypatch.setattr(G, "generate_glyphs", no_render)
    again = data.load("glyphs")
    assert torch.equal(again.x[::997], glyph_set.x[::997])
    assert again.class_names == glyph_set.class_names


@pytest.fixture
def tiny_glyphs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the generator to 4 fonts and the Latin letters so that it runs in a second."""
    monkeypatch.setattr(G, "FONT_FILES", G.FONT_FILES[:4])
    monkeypatch.setattr(G, "BLOCKS", ((0x41, 0x5A, "Latin"), (0x61, 0x7A, "Latin")))
    monkeypatch.setattr(G, "RENDER_WORKERS", 1)
    monkeypatch.setattr(G, "_INVENTORY", None)  # restored afterwards


def test_tiny_generation_is_deterministic_and_cached_atomically(tiny_glyphs: None,
                                                                tmp_path: Path) -> None:
    first = G.load_glyphs(seed=3, root=tmp_path, instances_per_class=6, progress=False)
    assert os.listdir(tmp_path) == ["glyphs_seed3_n6_v1.npz"]  # nothing half-written
    assert first.n_classes == 52 and len(first) == 52 * 6
    assert first.x.shape == (312, 1, 28, 28)
    cached = G.load_glyphs(seed=3, root=tmp_path, instances_per_class=6, progress=False)
    assert torch.equal(first.x, cached.x) and torch.equal(first.y, cached.y)
    regenerated = G.generate_glyphs(6, seed=3, progress=False)
    assert np.array_equal(regenerated["x"], (first.x[:, 0] * 255).round().byte().numpy())
    other = G.generate_glyphs(6, seed=4, progress=False)
    assert not np.array_equal(other["x"], regenerated["x"])
    assert np.array_equal(other["codepoints"], regenerated["codepoints"])  # same classes
    # every instance uses one of its class's fonts, cycling through them
    assert set(regenerated["font"].tolist()) == {0, 1, 2, 3}


def test_unreadable_cache_is_regenerated(tiny_glyphs: None, tmp_path: Path) -> None:
    (tmp_path / G.cache_name(0, 2)).write_bytes(b"not a zip file")
    dataset = G.load_glyphs(seed=0, root=tmp_path, instances_per_class=2, progress=False)
    assert len(dataset) == 104
    with np.load(tmp_path / G.cache_name(0, 2)) as arrays:
        assert int(arrays["version"]) == G.VERSION


def test_glyph_argument_errors() -> None:
    with pytest.raises(ValueError, match="seed"):
        G.load_glyphs(seed=-1)
    with pytest.raises(ValueError, match="instances_per_class"):
        G.load_glyphs(instances_per_class=0)
    with pytest.raises(ValueError, match="seed"):
        data.load("glyphs", seed=1.0)  # type: ignore[arg-type]


# ---- an unwritable cache folder, a killed writer -----------------------------------------
def _no_render(*args: object, **kwargs: object) -> None:
    raise AssertionError("rendered although the cache folder is not writable")


def test_unwritable_folder_fails_before_rendering(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The check runs first: a folder that cannot be created (a file is in the way) and
    one where no file can be written (simulated: root bypasses permission bits) both fail
    at once, naming the folder and DML_KIT_DATA, with nothing rendered."""
    monkeypatch.setattr(G, "generate_glyphs", _no_render)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="DML_KIT_DATA") as info:
        data.load("glyphs", root=blocker / "cache")
    assert str(blocker / "cache") in str(info.value)
    assert "nothing was written" in str(info.value)

    def read_only(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(paths.tempfile, "mkstemp", read_only)
    with pytest.raises(ValueError, match="Permission denied") as info:
        G.load_glyphs(root=tmp_path / "ro", instances_per_class=2, progress=False)
    assert str(tmp_path / "ro") in str(info.value) and "DML_KIT_DATA" in str(info.value)


def test_stale_part_files_are_cleaned_and_live_ones_kept(tiny_glyphs: None,
                                                         tmp_path: Path) -> None:
    target = tmp_path / G.cache_name(0, 2)
    dead = tmp_path / f".{target.name}.999999999-abcd1234.part"  # no such pid
    live = tmp_path / f".{target.name}.{os.getppid()}-abcd1234.part"  # a live process
    legacy_old = tmp_path / f".{target.name}.k3j_x9q2.part"  # mkstemp-style, an hour old
    legacy_new = tmp_path / f".{target.name}.a8b_c7d6.part"  # might still be written
    for part in (dead, live, legacy_old, legacy_new):
        part.write_bytes(b"half-written")
    hour_ago = time.time() - 3600
    os.utime(legacy_old, (hour_ago, hour_ago))
    dataset = G.load_glyphs(seed=0, root=tmp_path, instances_per_class=2, progress=False)
    assert len(dataset) == 104
    assert not dead.exists() and not legacy_old.exists()
    assert live.exists() and legacy_new.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        target.name]  # the cache, complete, and no part of this writer left behind


def test_interrupted_write_leaves_no_part(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.npz"

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(paths.np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        paths.atomic_write_npz(target, compress=False, a=np.zeros(3))
    assert list(tmp_path.iterdir()) == []
