"""Tiny random-weight SAM and SAMIC checkpoints for end-to-end tests (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import torch

from samic_vos.model.checkpoint import save_samic
from samic_vos.model.samic_net import SamicNetConfig, build_samic
from samic_vos.sam.models import build_sam, save_sam

# A small head keeps the end-to-end runs to seconds; the checkpoint carries the architecture.
TINY_NET = SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))


def write_tiny_models(folder: Path) -> dict[str, Path]:
    """Write ``tiny_sam.pt`` and ``tiny_samic.pt`` into ``folder``; returns their paths."""
    torch.manual_seed(0)
    save_sam(folder / "tiny_sam.pt", build_sam("tiny", random_init=True), "tiny")
    save_samic(folder / "tiny_samic.pt", build_samic(TINY_NET))
    return {"sam": folder / "tiny_sam.pt", "samic": folder / "tiny_samic.pt"}


def write_family_model(folder: Path, name: str) -> Path:
    """A random-weight model of another family (``tiny_hq``, ``tiny_medsam``, ``tiny_sam2``),
    built by its package's own builder, in our checkpoint format (which names the model)."""
    from samic_vos.sam.models import build_named

    torch.manual_seed(0)
    path = folder / f"{name}.pt"
    save_sam(path, build_named(name), name)
    return path
