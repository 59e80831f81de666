"""Shared test fixtures: where the real data lives, tiny random-weight models, one torch
thread for heavy modules."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Tests interrupt the commands they start as Ctrl-C does (SIGINT). A suite started in the
    background by a non-interactive shell (``.ci/run &``) inherits SIGINT ignored, and so would
    those commands, which then never see it: handle it here, so that each command starts with
    the default disposition (exec resets a handled signal, never an ignored one)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: on a shared, loaded CPU several threads are many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints of a tiny random-weight SAM and SAMIC: ``{"sam": path, "samic": path}``."""
    from tiny_models import write_tiny_models  # imports torch: only for the tests that use it

    return write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def segmenter():
    """SAMBOX's tests' segmenter: the tiny random-weight SAM (one per test module; modules
    that test the segmenter itself define their own)."""
    from sambox_helpers import tiny_segmenter

    return tiny_segmenter()


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """SAMBOX's folders: the test images (sambox_helpers.make_images) and where annotations go."""
    from sambox_helpers import make_images

    return make_images(tmp_path / "images"), tmp_path / "annotations"
