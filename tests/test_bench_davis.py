"""`samic-vos bench davis` end to end on tiny random-weight models: scores, table, JSON,
resume, shards and merge, a 2-object 2017 root, the shipped configs, and bad inputs."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from samic_vos.commands.cli import main
from samic_vos.data.davis import copy_short_root
from samic_vos.data.mask_io import read_mask, write_mask
from samic_vos.inference.tracker import CausalTracker
from samic_vos.runtime.shards import Shard, parse_shard, resolve_shard

FRAMES = 6


@pytest.fixture(scope="module")
def models(tiny_models) -> list[str]:
    return ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]


@pytest.fixture(scope="module")
def root16(tmp_path_factory, shared_data) -> Path:
    base = tmp_path_factory.mktemp("davis16")
    return copy_short_root(shared_data / "DAVIS", base, ["car-shadow", "blackswan"], FRAMES, "2016")


def _bench(root: Path, out: Path, models: list[str], *extra: str) -> tuple[int, str]:
    stdout = io.StringIO()
    argv = ["bench", "davis", "--davis-root", str(root), "--year", "2016", "-o", str(out)]
    with redirect_stdout(stdout):
        code = main([*argv, *models, "-q", *extra])
    return code, stdout.getvalue()


def _outputs(out: Path) -> dict[str, bytes]:
    files = sorted(
        p for kind in ("results", "prompts") for p in (out / kind).rglob("*") if p.is_file()
    )
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


class Steps:
    """Counts tracker steps; raises KeyboardInterrupt when ``stop_at`` steps are done."""

    def __init__(self, monkeypatch, stop_at: int | None = None) -> None:
        self.calls, real = 0, CausalTracker.step

        def step(tracker, rgb, mask=None, embedding=None):
            if self.calls == stop_at:
                raise KeyboardInterrupt
            self.calls += 1
            return real(tracker, rgb, mask, embedding)

        monkeypatch.setattr(CausalTracker, "step", step)


@pytest.mark.slow
def test_bench_scores_resumes_and_shards_to_identical_results(
    tmp_path, root16, models, monkeypatch
):
    straight = tmp_path / "straight"
    code, text = _bench(root16, straight, models, "--json")
    assert code == 0
    scores = json.loads(text)
    assert set(scores["global"]) >= {"J&F-Mean", "J-Mean", "F-Mean", "J-Recall", "F-Decay"}
    assert set(scores["per_object"]) == {"car-shadow_1", "blackswan_1"}
    assert scores["published"]["SAMIC (paper, ViT-H)"] == 87.2 and scores["frames"] == 2 * FRAMES
    assert scores["fps"] > 0 and set(scores["seconds"]) == {
        "encoder",
        "prompter",
        "decoder",
        "other",
    }
    assert json.loads((straight / "scores.json").read_text()) == scores
    for name in ("car-shadow", "blackswan"):
        assert len(list((straight / "results" / name).iterdir())) == FRAMES
    # The same numbers as `samic-vos eval davis` on the folder.
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert (
            main(
                [
                    "eval",
                    "davis",
                    str(straight / "results"),
                    "--davis-root",
                    str(root16),
                    "--year",
                    "2016",
                    "--json",
                ]
            )
            == 0
        )
    assert json.loads(stdout.getvalue())["global"] == scores["global"]

    # A finished run: nothing computed, the table printed.
    steps = Steps(monkeypatch)
    code, table = _bench(root16, straight, models)
    assert code == 0 and steps.calls == 0
    assert (
        "J&F-Mean" in table
        and "XMem" in table
        and f"{100 * scores['global']['J&F-Mean']:.1f}" in table
    )
    monkeypatch.undo()

    # Interrupted in the second sequence, then resumed: only the missing frames are computed.
    split = tmp_path / "split"
    Steps(monkeypatch, stop_at=FRAMES + 2)
    assert _bench(root16, split, models)[0] == 130
    monkeypatch.undo()
    steps = Steps(monkeypatch)
    assert _bench(root16, split, models)[0] == 0
    assert steps.calls == FRAMES - 2
    assert _outputs(split) == _outputs(straight)
    # The table's frame count: every frame once, those the interrupted run wrote included
    # (it counted only its finished sequence, and the resumed run only the missing frames).
    assert json.loads((split / "scores.json").read_text())["frames"] == 2 * FRAMES
    monkeypatch.undo()

    # Two shards, by flag and by torchrun's environment, give the same results; merge scores.
    shards = tmp_path / "shards"
    code, text = _bench(root16, shards, models, "--shard", "0/2", "--json")
    assert code == 0 and text == "" and not (shards / "scores.json").exists()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, text = _bench(root16, shards, models, "--json")
    assert code == 0 and json.loads(text)["global"] == scores["global"]
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert _outputs(shards) == _outputs(straight)
    code, text = _bench(root16, shards, models, "--merge", "--json")
    assert code == 0 and json.loads(text)["global"] == scores["global"]
    # More shards than sequences: the third of three has nothing to track, and says nothing.
    steps = Steps(monkeypatch)
    code, text = _bench(root16, tmp_path / "third", models, "--shard", "2/3", "--json")
    assert (code, text, steps.calls) == (0, "", 0)
    assert not list((tmp_path / "third" / "results").glob("*/*.png"))


@pytest.mark.slow
def test_bench_on_a_two_object_2017_root(tmp_path, shared_data, models):
    davis = shared_data / "DAVIS"
    root = copy_short_root(davis, tmp_path / "davis17", ["bmx-trees"], FRAMES, "2017")
    first = read_mask(shared_data / "multiobject/bmx-trees/00000.png")
    write_mask(root / "Annotations/480p/bmx-trees/00000.png", first)
    out = tmp_path / "out"
    argv = ["bench", "davis", "--davis-root", str(root), "--year", "2017", "-o", str(out)]
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert main([*argv, *models, "-q", "--json"]) == 0
    scores = json.loads(stdout.getvalue())
    assert set(scores["per_object"]) == {"bmx-trees_1", "bmx-trees_2"}
    assert scores["published"]["PerSAM (ViT-H)"] == 60.3
    ids = set(np.unique(read_mask(out / "results/bmx-trees/00000.png")).tolist())
    assert ids == {0, 1, 2}


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("samic-vos: error: "), err
    assert all(line.startswith("samic-vos: warning: ") for line in err[:-1]), err
    return err[-1]


def test_bad_inputs_are_one_line_and_leave_nothing(tmp_path, capsys, root16, models):
    out = tmp_path / "out"
    no_sets = tmp_path / "nosets"
    shutil.copytree(root16 / "JPEGImages", no_sets / "JPEGImages")
    shutil.copytree(root16 / "Annotations", no_sets / "Annotations")
    assert _bench(no_sets, out, models)[0] == 2
    assert "ImageSets" in _error(capsys)
    assert _bench(root16, out, models, "--sequences", "nope")[0] == 2
    assert "nope" in _error(capsys)
    assert _bench(root16, out, models, "--shard", "3/2")[0] == 2
    assert "shard '3/2'" in _error(capsys)
    assert _bench(root16, out, models, "--merge")[0] == 2
    assert "holds no `bench davis` run" in _error(capsys)
    assert not out.exists()


@pytest.mark.slow
def test_another_configuration_into_the_same_out_is_refused(tmp_path, capsys, root16, models):
    out = tmp_path / "out"
    assert _bench(root16, out, models, "--sequences", "car-shadow")[0] == 0
    before = _outputs(out)
    # Another prompter (its run takes no --samic, which it would ignore: refused on its own).
    sam_only = models[:2]
    assert (
        _bench(root16, out, sam_only, "--sequences", "car-shadow", "--prompter", "previous-mask")[0]
        == 2
    )
    assert "holds another run" in _error(capsys)
    assert _outputs(out) == before


def test_shards_split_by_frame_count_and_come_from_launchers():
    items = [("a", 10), ("b", 80), ("c", 40), ("d", 50)]
    parts = [Shard(i, 2).take(items) for i in range(2)]
    assert sorted(parts[0] + parts[1]) == ["a", "b", "c", "d"]
    assert parts == [["b", "c"], ["a", "d"]]  # 120 and 60 frames: heaviest first, alternating
    assert parse_shard("1/4") == Shard(1, 4, "shard 1/4")
    assert resolve_shard(None, {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3"}).local_rank == 3
    slurm = {
        "SLURM_ARRAY_TASK_ID": "12",
        "SLURM_ARRAY_TASK_MIN": "10",
        "SLURM_ARRAY_TASK_COUNT": "4",
    }
    assert (resolve_shard(None, slurm).index, resolve_shard(None, slurm).count) == (2, 4)
    assert resolve_shard(None, {}) == Shard()


def test_the_paper_configs_load():
    from samic_vos.pipelines.bench_davis import BenchDavisConfig
    from samic_vos.runtime.config import load_config

    repo = Path(__file__).resolve().parents[1]
    for year in ("16", "17"):
        config = load_config(BenchDavisConfig(), repo / f"configs/davis{year}.yaml")
        assert config.davis.year == f"20{year}" and config.track.sam_model == "vit_h"
        assert config.track.network.input_size == (224, 224) == config.train.network.input_size
        assert config.track.tracker.heat_sigma == 0.02 == config.train.heat_sigma
        train = config.train.train
        assert (train.max_epochs, train.patience, train.batch_size, train.lr) == (300, 10, 4, 1e-3)


def _tiny_train_config(path: Path, random_backbone: bool) -> Path:
    """A `bench davis --config` YAML: tiny SAMIC networks (a random backbone, or ImageNet's),
    trained one epoch on a few flow-picked frames."""
    backbone = "backbone: random, " if random_backbone else ""
    tiny = f"{{input_size: [64, 64], {backbone}channels: [8, 16, 32]}}"
    path.write_text(
        f"track: {{network: {tiny}}}\n"
        f"train: {{network: {tiny}, flow: {{top_k: 3, min_gap: 1, working_size: 64}},"
        " train: {max_epochs: 1, cache_dtype: float32}, augment: {enabled: false}}\n"
    )
    return path


@pytest.mark.slow
def test_train_first_then_track_with_the_trained_network(tmp_path, shared_data, models):
    davis, root = shared_data / "DAVIS", tmp_path / "davis"
    copy_short_root(davis, root, ["car-shadow"], FRAMES, "2016")
    # a train set of two short sequences beside the val set
    copy_short_root(davis, root, ["bear", "boat"], FRAMES, "2016", split="train")
    config = _tiny_train_config(tmp_path / "tiny.yaml", random_backbone=True)
    out = tmp_path / "out"
    sam = models[:2]  # the SAM checkpoint only: SAMIC is trained here
    code, text = _bench(root, out, sam, "--train", "--config", str(config), "--json")
    assert code == 0
    scores = json.loads(text)
    assert (out / "samic.pt").is_file() and (out / "train/best.pt").is_file()
    assert (out / "train/run.json").is_file() and set(scores["per_object"]) == {"car-shadow_1"}
    assert "trained on the 2016 train set" in (out / "config.yaml").read_text()


@pytest.mark.slow
def test_stopped_while_copying_the_trained_network_the_rerun_still_runs(
    tmp_path, shared_data, models, monkeypatch
):
    """Stopped (Ctrl-C; SIGKILL alike) halfway through copying train/best.pt to OUT/samic.pt:
    the rerun does not load a cut samic.pt (it would fail in every rerun), it finishes with
    samic.pt the trained network."""
    import samic_vos.pipelines.bench_davis as pipeline

    davis, root = shared_data / "DAVIS", tmp_path / "davis"
    copy_short_root(davis, root, ["car-shadow"], 3, "2016")
    copy_short_root(davis, root, ["bear"], FRAMES, "2016", split="train")
    config = _tiny_train_config(tmp_path / "tiny.yaml", random_backbone=True)
    out, args = tmp_path / "out", ["--train", "--config", str(config)]

    real_copy = shutil.copyfile

    def cut_copy(source, target, *rest, **kwargs):
        if Path(target).parent != out:  # the training's own copies
            return real_copy(source, target, *rest, **kwargs)
        data = Path(source).read_bytes()
        Path(target).write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.shutil, "copyfile", cut_copy)
        assert _bench(root, out, models[:2], *args)[0] == 130
    assert _bench(root, out, models[:2], *args)[0] == 0
    assert (out / "samic.pt").read_bytes() == (out / "train" / "best.pt").read_bytes()
    assert (out / "scores.json").is_file()


@pytest.mark.slow
def test_report_puts_prompters_side_by_side(tmp_path, root16, models):
    import base64
    import re

    from PIL import Image

    samic, baseline = tmp_path / "samic", tmp_path / "previous"
    assert _bench(root16, samic, models, "--sequences", "car-shadow")[0] == 0
    extra = ["--sequences", "car-shadow", "--prompter", "previous-mask", "--report", "--json"]
    code, text = _bench(root16, baseline, models[:2], *extra, "--compare", str(samic))
    assert code == 0
    page = (baseline / "report.html").read_text()
    assert "previous-mask (previous)" in page and "samic (samic)" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert images
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    ours = json.loads(text)["global"]["J&F-Mean"]
    assert re.search(rf'data-value="{re.escape(repr(ours))}"', page) or f"{100 * ours:.1f}" in page


def test_download_picks_the_root(tmp_path, capsys, root16, models, monkeypatch):
    import samic_vos.hub.datasets as download

    asked = []
    monkeypatch.setattr(
        download, "ensure_dataset", lambda name, root=None: asked.append(name) or root16
    )
    out = tmp_path / "out"
    argv = ["bench", "davis", "--download", "--year", "2016", "--sequences", "car-shadow"]
    assert main([*argv, "-o", str(out), *models, "-q"]) == 0
    assert asked == ["davis-2016-trainval-480p"]
    assert main([*argv, "--davis-root", str(root16), "-o", str(out), *models]) == 2
    assert "--download picks the DAVIS root itself" in _error(capsys)


def test_a_sequence_the_scoring_refuses_is_refused_before_tracking(
    tmp_path, capsys, shared_data, models, monkeypatch
):
    """A 1-frame sequence cannot be scored (the first and last frames are not): refused before
    any frame is tracked, and nothing is left that blocks the corrected rerun."""
    root = copy_short_root(shared_data / "DAVIS", tmp_path / "d16", ["blackswan"], 1, "2016")
    steps = Steps(monkeypatch)
    out = tmp_path / "out"
    assert _bench(root, out, models)[0] == 2
    assert "needs at least 3" in _error(capsys)
    assert steps.calls == 0 and not out.exists()


def test_random_backbone_reaches_the_training_stage_and_a_failed_start_blocks_nothing(
    tmp_path, shared_data, models, monkeypatch, capsys
):
    """`bench davis --train --random-backbone`: the switch applies to the network trained too
    (before, training asked for ResNet-50). Without it, offline, the run stops at the missing
    ResNet-50 having produced nothing, so the corrected command is not refused as another run."""
    import socket

    from http_server import isolate

    from samic_vos.hub import weights

    isolate(monkeypatch, tmp_path / "home")
    with socket.socket() as sock:  # a port nobody listens on: offline
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/resnet50.pth"
    offline = weights.WeightsEntry(**{**vars(weights.REGISTRY["resnet50_imagenet"]), "url": url})
    monkeypatch.setattr(weights, "REGISTRY", {**weights.REGISTRY, "resnet50_imagenet": offline})
    davis, root = shared_data / "DAVIS", tmp_path / "davis"
    copy_short_root(davis, root, ["car-shadow"], FRAMES, "2016")
    copy_short_root(davis, root, ["bear"], FRAMES, "2016", split="train")
    config = _tiny_train_config(tmp_path / "tiny.yaml", random_backbone=False)
    out, sam = tmp_path / "out", models[:2]
    code, _ = _bench(root, out, sam, "--train", "--config", str(config))
    assert code == 2 and "resnet50-0676ba61.pth" in _error(capsys)
    code, _ = _bench(root, out, sam, "--train", "--config", str(config), "--random-backbone")
    assert code == 0, capsys.readouterr().err
    trained = (out / "train" / "config.yaml").read_text()
    assert "backbone: random" in trained
