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
