"""Shared test fixtures: where the real data lives, tiny random-weight models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (or ``$SAMIC_VOS_SHARED_DATA``)."""
    env = os.environ.get("SAMIC_VOS_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"real data not found at {path}: clone the repository beside ../shared")
    return path


@pytest.fixture(scope="session")
def davis_root(shared_data: Path) -> Path:
    return shared_data / "DAVIS"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints of a tiny random-weight SAM and SAMIC: ``{"sam": path, "samic": path}``."""
    import torch

    from samic_vos.sam_models import build_sam, save_sam
    from samic_vos.samic_checkpoint import save_samic
    from samic_vos.samic_net import SamicNetConfig, build_samic

    # A small head keeps end-to-end runs to seconds; the checkpoint carries the architecture.
    tiny_net = SamicNetConfig(input_size=(64, 64), backbone="random", channels=(8, 16, 32))
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_sam(folder / "tiny_sam.pt", build_sam("tiny", random_init=True), "tiny")
    save_samic(folder / "tiny_samic.pt", build_samic(tiny_net))
    return {"sam": folder / "tiny_sam.pt", "samic": folder / "tiny_samic.pt"}
