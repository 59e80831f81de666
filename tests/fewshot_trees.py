"""Tiny few-shot trees written by tests: images, grayscale masks, a PerSeg layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 12, 16


def image(path: Path, size: tuple[int, int] = (H, W)) -> Path:
    """A plain RGB JPEG/PNG of ``size`` = (H, W) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), (40, 90, 160)).save(path)
    return path


def gray(path: Path, values: np.ndarray) -> Path:
    """``values`` (uint8 (H, W)) as a grayscale ``L`` PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)
    return path


def square(value: int = 255, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """A (H, W) uint8 mask with ``value`` on rows 2..5, columns 3..8 (24 pixels)."""
    mask = np.zeros(size, dtype=np.uint8)
    mask[2:6, 3:9] = value
    return mask


def perseg_tree(root: Path) -> Path:
    """PerSeg objects ``dog`` and ``can`` with images 00..02 (mask 01 holds value 1, else 255)."""
    for obj in ("dog", "can"):
        for n in range(3):
            image(root / "Images" / obj / f"{n:02d}.jpg")
            gray(root / "Annotations" / obj / f"{n:02d}.png", square(1 if n == 1 else 255))
    return root
