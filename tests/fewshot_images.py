"""Synthetic few-shot image sets made by tests: shapes of known colour on textured backgrounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

HEIGHT, WIDTH = 60, 80
RED, BLUE = (220, 40, 40), (40, 40, 220)


def scene(
    seed: int, squares: list[tuple[int, int, int, int]], size: tuple[int, int] = (HEIGHT, WIDTH)
) -> tuple[np.ndarray, np.ndarray]:
    """A textured (H, W, 3) uint8 image and its (H, W) uint8 class map.

    ``squares``: (class id, row, col, side) of each square; class 1 is red, 2 blue, later ids
    green; a square overwrites earlier ones.
    """
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 70, (*size, 3), dtype=np.uint8)
    ids = np.zeros(size, dtype=np.uint8)
    for class_id, row, col, side in squares:
        colour = {1: RED, 2: BLUE}.get(class_id, (40, 200, 40))
        rgb[row : row + side, col : col + side] = colour
        ids[row : row + side, col : col + side] = class_id
    return rgb, ids


def two_classes(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A red square (class 1) and a blue one (class 2), placed by ``seed``."""
    shift = seed % 5
    return scene(seed, [(1, 8 + shift, 8 + shift, 18), (2, 34 - shift, 48 - shift, 20)])


def write_set(folder: Path, count: int, start: int = 0, masks: bool = True) -> list[Path]:
    """``count`` two-class scenes as ``folder/img_<n>.png`` (+ ``img_<n>_mask.png`` palette)."""
    from samic_vos.data.mask_io import write_mask

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(start, start + count):
        rgb, ids = two_classes(n)
        path = folder / f"img_{n}.png"
        Image.fromarray(rgb).save(path)
        if masks:
            write_mask(folder / f"img_{n}_mask.png", ids)
        paths.append(path)
    return paths


def two_blob_logits(
    ref_heat: torch.Tensor, centres: tuple[tuple[float, float], tuple[float, float]]
) -> torch.Tensor:
    """A stand-in for SAMIC's prediction: (B, 1, h, w) logits of two Gaussian blobs at
    ``centres`` ((row, col) shares of the map's height and width), for the B heat maps
    ``ref_heat`` (B, 1, h, w)."""
    batch, _, h, w = ref_heat.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    blobs = torch.zeros(h, w)
    for row, col in centres:
        cy, cx = h * row, w * col
        blobs = torch.maximum(blobs, torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0))
    return torch.logit(blobs.clamp(1e-4, 1 - 1e-4)).expand(batch, 1, h, w)
