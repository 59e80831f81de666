"""Torch threads per stage: the context manager, the ``threads:`` config, and the stages of
`samic-vos track` and `segment` (encoder, SAMIC, SAM's decoder, adaptation) and of training
actually running under their configured counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from fewshot_images import write_set
from segment_anything.modeling import MaskDecoder
from segment_anything.modeling.image_encoder import PatchEmbed
from test_trainer import SIZE, make_pairs

import samic_vos.training.first_frame_adaptation as adaptation_module
import samic_vos.training.trainer as trainer_module
from samic_vos.commands.cli import main
from samic_vos.jobs.track import TrackConfig
from samic_vos.model.samic_net import SamicNet, SamicNetConfig, build_samic
from samic_vos.runtime.config import apply_overrides
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.stage_threads import STAGES, StageThreads, ThreadsConfig, torch_threads
from samic_vos.training.train_dataset import AugmentConfig, PairDataset
from samic_vos.training.trainer import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_torch_threads_sets_the_count_and_restores_it_even_after_an_error():
    assert torch.get_num_threads() == 1
    with torch_threads(3):
        assert torch.get_num_threads() == 3
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 1
    with pytest.raises(RuntimeError), torch_threads(4):
        raise RuntimeError("stage failed")
    assert torch.get_num_threads() == 1
    with torch_threads(None):
        assert torch.get_num_threads() == 1


def test_auto_gives_the_encoder_every_thread_and_the_small_stages_half():
    small = ("samic", "decoder", "adaptation", "training")
    for available, half in ((1, 1), (2, 1), (3, 1), (8, 4)):
        with torch_threads(available):
            counts = StageThreads.resolve().counts
        assert counts == {"encoder": available, **dict.fromkeys(small, half)}, available
    with torch_threads(3):  # SAMBOX: a person waits on every decode
        assert StageThreads.interactive().counts == dict.fromkeys(STAGES, 3)
    counts = StageThreads.resolve(ThreadsConfig(decoder=2, training=4)).counts
    assert counts["decoder"] == 2 and counts["training"] == 4 and counts["encoder"] == 1
    assert set(counts) == set(STAGES)
    with torch_threads(3):  # a machine of one's own: every thread for the small stages too
        counts = StageThreads.resolve(ThreadsConfig(samic="all", decoder="all")).counts
    assert counts == {"encoder": 3, "samic": 3, "decoder": 3, "adaptation": 1, "training": 1}


def test_threads_config_goes_through_the_config_path():
    yaml_config = apply_overrides(TrackConfig(), {"threads": {"samic": 2, "encoder": "auto"}})
    assert yaml_config.threads == ThreadsConfig(samic=2)
    flag = apply_overrides(TrackConfig(), {"threads": {"decoder": "3"}}, "--x", from_text=True)
    assert flag.threads.decoder == 3
    every = apply_overrides(TrackConfig(), {"threads": {"samic": "all"}}, "t.yaml")
    assert every.threads.samic == "all"
    for value in (0, -1, "two", True, 1.5):
        with pytest.raises(UserError, match=r"threads\.samic must be"):
            apply_overrides(TrackConfig(), {"threads": {"samic": value}}, "t.yaml")
    with pytest.raises(UserError, match=r"t.yaml: threads\.gpu must be a known key"):
        apply_overrides(TrackConfig(), {"threads": {"gpu": 1}}, "t.yaml")


def _spy(monkeypatch, owner, name: str, stage: str, seen: dict[str, set[int]]) -> None:
    """Record ``torch.get_num_threads()`` each time ``owner.name`` runs, under ``stage``."""
    inner = getattr(owner, name)

    def spied(*args, **kwargs):
        seen.setdefault(stage, set()).add(torch.get_num_threads())
        return inner(*args, **kwargs)

    monkeypatch.setattr(owner, name, spied)


THREADS = {"encoder": 3, "samic": 2, "decoder": 4, "adaptation": 5}


def _spy_stages(tmp_path, monkeypatch, adaptation: dict) -> tuple[Path, dict[str, set[int]]]:
    """A config with :data:`THREADS`, a tiny network and ``adaptation``; and the thread counts
    seen inside SAM's encoder, SAMIC's predict, SAM's decoder and the adaptation's loss."""
    config = tmp_path / "threads.yaml"
    network = {"input_size": [64, 64], "channels": [8, 16, 32]}
    config.write_text(
        yaml.safe_dump({"threads": THREADS, "network": network, "adaptation": adaptation})
    )
    seen: dict[str, set[int]] = {}
    _spy(monkeypatch, PatchEmbed, "forward", "encoder", seen)
    _spy(monkeypatch, SamicNet, "predict", "samic", seen)
    _spy(monkeypatch, MaskDecoder, "forward", "decoder", seen)
    _spy(monkeypatch, adaptation_module, "view_loss", "adaptation", seen)
    return config, seen


def test_track_stages_run_under_their_configured_counts(
    tmp_path, shared_data, tiny_models, monkeypatch
):
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:3]:
        shutil.copy(path, frames / path.name)
    adaptation = {"views": 3, "steps": 2, "batch_size": 2}
    config, seen = _spy_stages(tmp_path, monkeypatch, adaptation)
    first = shared_data / "videos/davis_bear_first_mask.png"
    args = ["track", str(frames), "--first-mask", str(first), "-o", str(tmp_path / "out")]
    args += ["--config", str(config), "--random-backbone"]
    assert main([*args, "--sam-checkpoint", str(tiny_models["sam"])]) == 0

    # SAMIC's predict also runs in the adaptation's views and validations (adaptation's count).
    assert seen == {
        "encoder": {3},
        "samic": {2, 5},
        "decoder": {4},
        "adaptation": {5},
    }
    assert torch.get_num_threads() == 1  # restored after every stage
    ran = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert ran["threads"] == {**THREADS, "training": "auto"}


def test_training_runs_under_its_count(tmp_path, monkeypatch):
    pairs, _ = make_pairs(tmp_path / "pairs", 4, seed=0)
    net = build_samic(
        SamicNetConfig(input_size=(SIZE, SIZE), backbone="random", channels=(8, 16, 32))
    )
    dataset = PairDataset(pairs, (SIZE, SIZE), AugmentConfig(enabled=False), 0.05)
    seen: dict[str, set[int]] = {}
    _spy(monkeypatch, trainer_module, "saliency_loss", "training", seen)
    config = TrainConfig(max_epochs=1, cache_dtype="float32")
    fit(net, dataset, None, config, tmp_path / "run", log=lambda line: None, threads=3)
    assert seen == {"training": {3}}
    assert torch.get_num_threads() == 1


def test_segment_stages_run_under_their_configured_counts(tmp_path, tiny_models, monkeypatch):
    write_set(tmp_path / "refs", 2)
    write_set(tmp_path / "targets", 2, start=10, masks=False)
    adaptation = {"steps": 2, "views": 2, "val_every": 1, "batch_size": 2}
    config, seen = _spy_stages(tmp_path, monkeypatch, adaptation)
    args = ["segment", "--ref", str(tmp_path / "refs/img_0.png")]
    args += ["--ref-mask", str(tmp_path / "refs/img_0_mask.png"), str(tmp_path / "targets")]
    args += ["-o", str(tmp_path / "out"), "--config", str(config), "--random-backbone"]
    assert main([*args, "--sam-checkpoint", str(tiny_models["sam"])]) == 0

    assert seen == {"encoder": {3}, "samic": {2, 5}, "decoder": {4}, "adaptation": {5}}
    assert torch.get_num_threads() == 1
