from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from samic_vos.data.mask_io import DAVIS_PALETTE, read_mask, write_mask
from samic_vos.runtime.errors import UserError


def test_palette_matches_davis_files(shared_data):
    with Image.open(shared_data / "DAVIS/Annotations/480p/bear/00000.png") as image:
        official = np.array(image.getpalette(), dtype=np.uint8).reshape(-1, 3)
    assert np.array_equal(DAVIS_PALETTE, official)
    assert DAVIS_PALETTE[255].tolist() == [224, 224, 192]


def test_reads_palette_and_raw_davis2016(shared_data):
    ids = read_mask(shared_data / "multiobject/bmx-trees/00000.png")
    assert ids.dtype == np.uint8 and ids.shape == (480, 854)
    assert set(np.unique(ids).tolist()) == {0, 1, 2}
    raw = read_mask(shared_data / "davis2016_raw_masks/blackswan/00000.png")
    converted = read_mask(shared_data / "DAVIS/Annotations/480p/blackswan/00000.png")
    assert set(np.unique(raw).tolist()) == {0, 1}
    assert np.array_equal(raw, converted)


def test_write_roundtrip_is_indexed_with_palette(tmp_path):
    ids = np.zeros((7, 9), np.uint8)
    ids[1:3, 2:5] = 1
    ids[4:6, 6:8] = 3
    ids[0, 0] = 255
    out = tmp_path / "00000.png"
    write_mask(out, ids)
    with Image.open(out) as image:
        assert image.mode == "P"
        assert image.getpalette()[3:6] == [128, 0, 0]
    assert np.array_equal(read_mask(out), ids)
    assert [p.name for p in tmp_path.iterdir()] == ["00000.png"]


@pytest.mark.parametrize(
    ("mode", "values", "message"),
    [
        ("RGB", None, "colour"),
        ("L", [0, 1, 2], "grayscale mask with 3 distinct values"),
        ("LA", None, r"grayscale image with transparency \(LA\); save it without transparency"),
    ],
)
def test_refuses_ambiguous_masks(tmp_path, mode, values, message):
    path = tmp_path / "m.png"
    if mode == "RGB":
        Image.new("RGB", (4, 4), (128, 0, 0)).save(path)
    elif mode == "LA":  # GIMP's "grayscale with alpha": not a colour image
        Image.new("LA", (4, 4), (255, 255)).save(path)
    else:
        Image.fromarray(np.array(values * 4, np.uint8).reshape(3, 4)).save(path)
    with pytest.raises(UserError, match=message):
        read_mask(path)


def test_a_16_bit_binary_mask_is_one_object(tmp_path):
    """0/65535 is a 16-bit PNG's 0/255 (MATLAB, ImageJ, scikit-image save binary masks so)."""
    ids = np.zeros((3, 4), np.uint8)
    ids[1:, 2:] = 1
    path = tmp_path / "m.png"
    Image.fromarray(ids.astype(np.uint16) * 65535).save(path)
    assert Image.open(path).mode.startswith("I;16")
    assert np.array_equal(read_mask(path), ids)


def test_missing_and_undecodable(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_mask(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot decode"):
        read_mask(bad)


def test_written_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_mask(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644
