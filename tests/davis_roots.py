"""Tiny DAVIS roots written by tests (frames, annotations, ImageSets) and result folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from samic_vos.data.mask_io import write_mask


def write_masks(folder: Path, masks: list[np.ndarray]) -> None:
    """``masks[t]`` → ``folder/<t:05d>.png`` (DAVIS palette PNGs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, ids in enumerate(masks):
        write_mask(folder / f"{t:05d}.png", ids)


def make_davis_root(
    root: Path,
    sequences: dict[str, list[np.ndarray]],
    year: str = "2017",
    split: str = "val",
    resolution: str = "480p",
) -> Path:
    """A DAVIS root whose ``split`` lists ``sequences``: ``{name: [id map of frame t]}``.

    Frames are grey JPEGs of the masks' size; annotations are palette PNGs.
    """
    for name, masks in sequences.items():
        frames = root / "JPEGImages" / resolution / name
        frames.mkdir(parents=True)
        for t, ids in enumerate(masks):
            Image.new("RGB", (ids.shape[1], ids.shape[0]), (128, 128, 128)).save(
                frames / f"{t:05d}.jpg"
            )
        write_masks(root / "Annotations" / resolution / name, masks)
    sets = root / "ImageSets" / year
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{split}.txt").write_text("".join(f"{name}\n" for name in sequences))
    return root
