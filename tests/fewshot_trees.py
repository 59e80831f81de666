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


def textured(path: Path, seed: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A textured RGB image at ``path`` with a red square placed by ``seed``; returns its
    uint8 (H, W) mask (255 on the square)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 70, (*size, 3), dtype=np.uint8)
    mask = np.zeros(size, dtype=np.uint8)
    row, col = 6 + seed % 7, 8 + (3 * seed) % 11
    rgb[row : row + 20, col : col + 24] = (220, 40, 40)
    mask[row : row + 20, col : col + 24] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return mask


def fss_tree(root: Path, counts: dict[str, int]) -> Path:
    """Every FSS-1000 test class under ``root``: ``counts[name]`` textured images with masks
    (``1.jpg``, ``1.png``, ...) for the classes named there, one plain image for the others."""
    from samic_vos.data.fewshot_sets import fss_split_classes

    for k, name in enumerate(fss_split_classes("test")):
        if name not in counts:
            image(root / name / "1.jpg")
            gray(root / name / "1.png", square())
            continue
        for n in range(1, counts[name] + 1):
            gray(root / name / f"{n}.png", textured(root / name / f"{n}.jpg", 10 * k + n))
    return root


def textured_perseg_tree(root: Path, objects: dict[str, int]) -> Path:
    """PerSeg objects with ``objects[name]`` textured images ``00``, ``01``, ... and masks."""
    for k, name in enumerate(objects):
        for n in range(objects[name]):
            mask = textured(root / "Images" / name / f"{n:02d}.jpg", 10 * k + n)
            gray(root / "Annotations" / name / f"{n:02d}.png", mask)
    return root
