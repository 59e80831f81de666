"""The DAVIS reader: layouts, mask formats, errors; and the fast mask PNG decoder."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from davis_roots import make_davis_root
from PIL import Image

from samic_vos.data.davis import DavisDataset, read_image
from samic_vos.data.indexed_png import _indexed_pixels, read_ids
from samic_vos.data.mask_io import DAVIS_PALETTE, read_mask, write_mask
from samic_vos.runtime.errors import UserError

VAL_2016 = ["blackswan", "bmx-trees", "car-shadow", "paragliding-launch"]


def test_real_root_2016_val(davis_root: Path) -> None:
    dataset = DavisDataset(davis_root, year="2016", split="val")
    assert dataset.sequences == VAL_2016
    frames = dataset.frame_paths("blackswan")
    masks = dataset.annotation_paths("blackswan")
    assert len(frames) == len(masks) == 50
    assert [p.name for p in frames[:2]] == ["00000.jpg", "00001.jpg"]
    assert [p.stem for p in masks] == [p.stem for p in frames]
    ids = dataset.read_annotation("blackswan", 10)
    assert ids.dtype == np.uint8 and ids.shape == (480, 854)
    assert set(np.unique(ids)) == {0, 1}
    assert dataset.num_objects("blackswan") == 1
    image = read_image(frames[0])
    assert image.dtype == np.uint8 and image.shape == (480, 854, 3)


def test_a_root_with_one_imagesets_year_serves_both_years(davis_root: Path) -> None:
    # The shared root has ImageSets/2016 only; 2017 semantics read the same lists.
    dataset = DavisDataset(davis_root, year="2017", split="train")
    assert len(dataset.sequences) == 16 and "bear" in dataset.sequences


def test_original_davis2016_layout_and_grayscale_masks(tmp_path: Path, shared_data: Path) -> None:
    raw = sorted((shared_data / "davis2016_raw_masks" / "blackswan").glob("*.png"))
    root = tmp_path / "DAVIS2016"
    (root / "Annotations" / "480p" / "blackswan").mkdir(parents=True)
    (root / "JPEGImages" / "480p" / "blackswan").mkdir(parents=True)
    lines = []
    for path in raw:
        shutil.copy(path, root / "Annotations" / "480p" / "blackswan" / path.name)
        frame = shared_data / "DAVIS" / "JPEGImages" / "480p" / "blackswan" / f"{path.stem}.jpg"
        (root / "JPEGImages" / "480p" / "blackswan" / frame.name).symlink_to(frame)
        lines.append(
            f"/JPEGImages/480p/blackswan/{frame.name} /Annotations/480p/blackswan/{path.name}"
        )
    (root / "ImageSets" / "480p").mkdir(parents=True)
    (root / "ImageSets" / "480p" / "val.txt").write_text("\n".join(lines) + "\n")

    dataset = DavisDataset(root, year="2016", split="val")
    assert dataset.sequences == ["blackswan"]
    converted = DavisDataset(shared_data / "DAVIS", year="2016", split="val")
    for index in (0, 5, 9):
        ids = dataset.read_annotation("blackswan", index)
        np.testing.assert_array_equal(ids, converted.read_annotation("blackswan", index))
    assert dataset.num_objects("blackswan") == 1


def test_2017_ids_void_and_2016_binarisation(tmp_path: Path) -> None:
    first = np.zeros((6, 8), np.uint8)
    first[1, 1], first[2, 2], first[3, 3:5], first[5, :] = 1, 3, 2, 255  # ids 1..3 and void
    root = make_davis_root(tmp_path / "root", {"seq": [first, np.zeros_like(first)]})

    dataset = DavisDataset(root)  # year 2017, val, 480p
    np.testing.assert_array_equal(dataset.read_annotation("seq", 0), first)
    assert dataset.num_objects("seq") == 3  # void (255) is not an object

    binary = DavisDataset(root, year="2016").read_annotation("seq", 0)
    np.testing.assert_array_equal(binary, (first > 0).astype(np.uint8))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda root: shutil.rmtree(root), "DAVIS root not found"),
        (lambda root: shutil.rmtree(root / "ImageSets"), "ImageSets: folder not found"),
        (lambda root: shutil.rmtree(root / "JPEGImages" / "480p"), "JPEGImages/480p: folder"),
        (lambda root: shutil.rmtree(root / "Annotations" / "480p" / "b"), "sequence 'b'"),
    ],
)
def test_broken_roots_name_what_is_missing(tmp_path: Path, change, expected: str) -> None:
    mask = np.zeros((4, 4), np.uint8)
    root = make_davis_root(tmp_path / "root", {"a": [mask], "b": [mask]})
    change(root)
    with pytest.raises(UserError, match=expected):
        DavisDataset(root)


def test_unknown_split_year_and_sequence(tmp_path: Path) -> None:
    root = make_davis_root(tmp_path / "root", {"a": [np.zeros((4, 4), np.uint8)]}, split="train")
    (root / "ImageSets" / "2016").mkdir()  # two years: no fallback between them
    with pytest.raises(UserError, match=r"split 'val' not found \(splits available: train\)"):
        DavisDataset(root, split="val")
    with pytest.raises(UserError, match="use 2016 or 2017"):
        DavisDataset(root, year="2018", split="train")
    dataset = DavisDataset(root, split="train")
    with pytest.raises(UserError, match="unknown sequence 'nope'"):
        dataset.frame_paths("nope")


def test_read_image_is_rgb(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    Image.new("RGB", (3, 2), (10, 20, 30)).save(path)
    image = read_image(path)
    assert image.shape == (2, 3, 3) and image.dtype == np.uint8
    assert image[1, 2].tolist() == [10, 20, 30]
    with pytest.raises(UserError, match="not found"):
        read_image(tmp_path / "missing.jpg")


def _png(width: int, height: int, rows: list[bytes], colour: int = 3) -> bytes:
    """A PNG of raw rows (each starting with its filter byte), with the DAVIS palette."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"PLTE", DAVIS_PALETTE.tobytes())
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def test_fast_decoder_matches_pillow(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, size=(7, 9), dtype=np.uint8)
    ids[0, 0] = 255
    written = tmp_path / "written.png"
    write_mask(written, ids)  # Pillow writes unfiltered rows: the fast path
    assert _indexed_pixels(written.read_bytes()) is not None
    np.testing.assert_array_equal(read_ids(written), ids)

    # Rows with the "Sub" filter (each byte stored as the difference to its left neighbour):
    # not the fast path, still the same ids.
    sub = [b"\x01" + bytes(np.diff(row, prepend=np.uint8(0)).astype(np.uint8)) for row in ids]
    filtered = tmp_path / "filtered.png"
    filtered.write_bytes(_png(9, 7, sub))
    assert _indexed_pixels(filtered.read_bytes()) is None
    np.testing.assert_array_equal(read_mask(filtered), ids)
    np.testing.assert_array_equal(read_ids(filtered), ids)

    grey = tmp_path / "grey.png"
    Image.fromarray((ids > 1).astype(np.uint8) * 255).save(grey)
    np.testing.assert_array_equal(read_ids(grey), (ids > 1).astype(np.uint8))

    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (4, 4)).save(rgb)
    with pytest.raises(UserError, match="colour"):
        read_ids(rgb)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(written.read_bytes()[:60])
    with pytest.raises(UserError, match="truncated.png"):
        read_ids(truncated)


def test_a_folder_that_is_not_a_davis_root_says_so(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(UserError, match="not a DAVIS root \\(JPEGImages/ is missing\\)"):
        DavisDataset(tmp_path / "photos")
