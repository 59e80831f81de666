"""`samic-vos bench fewshot` end to end on tiny random-weight models and tiny fake trees:
FSS-1000 1-shot and 5-shot, PerSeg, scores equal to the written masks', resume, another
configuration refused, bad inputs, the report, the shipped configs."""

from __future__ import annotations

import base64
import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from fewshot_trees import fss_tree, gray, textured, textured_perseg_tree

from samic_vos.commands.cli import main
from samic_vos.data.fewshot_episodes import EpisodeConfig, fss_episodes, perseg_episodes
from samic_vos.data.fewshot_sets import Fss1000Dataset, PerSegDataset
from samic_vos.data.mask_io import read_mask
from samic_vos.eval.fewshot_eval import score_predictions
from samic_vos.inference.fewshot_engine import FewShotSegmenter
from samic_vos.sam.segmenter import SamSegmenter

REPO = Path(__file__).resolve().parents[1]
PAIR = ["accordion", "american_alligator"]  # 4 images each
SIX = "andean_condor"  # 6 images


@pytest.fixture(scope="module")
def fss_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fss") / "FSS-1000"
    return fss_tree(root, {PAIR[0]: 4, PAIR[1]: 4, SIX: 6})


@pytest.fixture(scope="module")
def perseg_root(tmp_path_factory) -> Path:
    return textured_perseg_tree(tmp_path_factory.mktemp("perseg"), {"dog": 3, "can": 4})


@pytest.fixture(scope="module")
def sam(tiny_models) -> list[str]:
    return ["--sam-checkpoint", str(tiny_models["sam"])]


@pytest.fixture(scope="module")
def samic(tiny_models, sam) -> list[str]:
    return [*sam, "--samic", str(tiny_models["samic"])]


def _bench(root: Path, out: Path, *extra: str) -> tuple[int, str]:
    stdout = io.StringIO()
    argv = ["bench", "fewshot", "--root", str(root), "-o", str(out), "-q", "--device", "cpu"]
    with redirect_stdout(stdout):
        code = main([*argv, *extra])
    return code, stdout.getvalue()


def _outputs(out: Path) -> dict[str, bytes]:
    files = sorted(
        p for kind in ("pred", "prompts") for p in (out / kind).rglob("*") if p.is_file()
    )
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("samic-vos: error: "), err
    assert all(line.startswith("samic-vos: warning: ") for line in err[:-1]), err
    return err[-1]


class Calls:
    """Counts calls of ``cls.method``; raises KeyboardInterrupt at call ``stop_at`` + 1."""

    def __init__(self, monkeypatch, cls, method: str, stop_at: int | None = None) -> None:
        self.count, real = 0, getattr(cls, method)

        def counted(obj, *args, **kwargs):
            if self.count == stop_at:
                raise KeyboardInterrupt
            self.count += 1
            return real(obj, *args, **kwargs)

        monkeypatch.setattr(cls, method, counted)


@pytest.mark.slow
def test_fss1000_1shot_scores_are_the_written_masks(tmp_path, fss_root, samic, monkeypatch):
    embeds = Calls(monkeypatch, SamSegmenter, "embed")
    out = tmp_path / "out"
    code, text = _bench(fss_root, out, *samic, "--classes", *PAIR, "--json")
    assert code == 0
    scores = json.loads(text)
    dataset = Fss1000Dataset(fss_root).select(PAIR)
    episodes = fss_episodes(dataset, EpisodeConfig(shots=1, seed=0))
    assert len(episodes) == 8
    expected = score_predictions(dataset, episodes, out / "pred")
    assert scores["global"] == expected["global"] and set(expected["global"]) == {"mIoU", "FB-IoU"}
    assert scores["per_class"] == expected["per_class"] and set(scores["per_class"]) == set(PAIR)
    assert scores["published"] == {
        "SAMIC (paper, ViT-H)": 89.0,
        "PerSAM (ViT-H)": 71.2,
        "Matcher (ViT-G)": 87.0,
    }
    assert (scores["episodes"], scores["images"], scores["shots"]) == (8, 8, 1)
    assert scores["ips"] > 0 and set(scores["seconds"]) == {
        "encoder",
        "prompter",
        "decoder",
        "other",
    }
    assert json.loads((out / "scores.json").read_text()) == scores
    # SAM encodes each image once: every image is a query once and a support in other episodes.
    assert embeds.count == 8
    for episode in episodes:
        ids = read_mask(out / "pred" / episode.class_name / f"{episode.query.name}.png")
        assert ids.shape == (48, 64) and set(np.unique(ids).tolist()) <= {0, 1}
        record = json.loads(
            (out / "prompts" / episode.class_name / f"{episode.query.name}.json").read_text()
        )
        assert record["supports"] == [s.name for s in episode.supports] != [episode.query.name]
    assert (out / "config.yaml").is_file() and (out / "run.json").is_file()


@pytest.mark.slow
def test_fss1000_5shot_table(tmp_path, fss_root, samic):
    out = tmp_path / "out"
    code, table = _bench(fss_root, out, *samic, "--classes", SIX, "--shots", "5")
    assert code == 0
    dataset = Fss1000Dataset(fss_root).select([SIX])
    episodes = fss_episodes(dataset, EpisodeConfig(shots=5))
    scores = json.loads((out / "scores.json").read_text())
    assert scores["global"] == score_predictions(dataset, episodes, out / "pred")["global"]
    for episode in episodes:
        record = json.loads((out / "prompts" / SIX / f"{episode.query.name}.json").read_text())
        assert len(record["supports"]) == 5 and episode.query.name not in record["supports"]
    assert "FSS-1000 test, 5-shot: 6 episodes, 1 classes" in table
    assert f"{scores['global']['mIoU']:.1f}" in table and "SAMIC (paper, ViT-H), 1-shot" in table
    assert "images/s" in table


@pytest.mark.slow
def test_perseg_with_persam_needs_no_network(tmp_path, perseg_root, sam, monkeypatch):
    references = Calls(monkeypatch, FewShotSegmenter, "set_references")
    out = tmp_path / "out"
    code, text = _bench(
        perseg_root, out, *sam, "--dataset", "perseg", "--prompter", "persam", "--json"
    )
    assert code == 0
    scores = json.loads(text)
    dataset = PerSegDataset(perseg_root)
    expected = score_predictions(dataset, perseg_episodes(dataset), out / "pred")
    assert scores["global"] == expected["global"] and set(scores["global"]) == {"mIoU"}
    assert scores["per_class"] == expected["per_class"] and set(scores["per_class"]) == {
        "dog",
        "can",
    }
    assert scores["published"]["PerSAM (ViT-H)"] == 86.1 and scores["episodes"] == 5
    assert sorted(p.name for p in (out / "pred" / "can").iterdir()) == [
        "01.png",
        "02.png",
        "03.png",
    ]
    assert references.count == 2  # the reference 00 of each object, once for all its targets


@pytest.mark.slow
def test_a_folder_is_scored_as_fss1000_at_its_own_size(tmp_path, sam):
    from samic_vos.data.fewshot_sets import FolderDataset

    root = tmp_path / "folder"
    for name, seeds in (("bolt", (1, 2, 3)), ("nut", (4, 5))):
        for seed in seeds:
            mask = textured(root / "images" / name / f"n{seed}.png", seed)
            gray(root / "masks" / name / f"n{seed}.png", mask)
    out = tmp_path / "out"
    code, text = _bench(root, out, *sam, "--dataset", "folder", "--prompter", "persam", "--json")
    assert code == 0
    dataset = FolderDataset(root)
    expected = score_predictions(dataset, fss_episodes(dataset), out / "pred")
    scores = json.loads(text)
    assert (scores["global"], scores["per_class"]) == (expected["global"], expected["per_class"])
    assert scores["published"] == {} and scores["episodes"] == 5 and scores["split"] is None


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_bytes(tmp_path, fss_root, samic, monkeypatch):
    straight = tmp_path / "straight"
    assert _bench(fss_root, straight, *samic, "--classes", *PAIR)[0] == 0
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        Calls(patch, FewShotSegmenter, "segment", stop_at=5)
        assert _bench(fss_root, out, *samic, "--classes", *PAIR)[0] == 130
    assert len(list((out / "pred").rglob("*.png"))) == 5 and not (out / "scores.json").exists()
    segments = Calls(monkeypatch, FewShotSegmenter, "segment")
    code, _ = _bench(fss_root, out, *samic, "--classes", *PAIR, "--json")
    assert code == 0 and segments.count == 3
    assert _outputs(out) == _outputs(straight)
    assert (
        json.loads((out / "scores.json").read_text())["global"]
        == json.loads((straight / "scores.json").read_text())["global"]
    )
    # Finished: nothing computed again; a lost prediction is redone.
    assert _bench(fss_root, out, *samic, "--classes", *PAIR)[0] == 0 and segments.count == 3
    (out / "pred" / PAIR[1] / "2.png").unlink()
    assert _bench(fss_root, out, *samic, "--classes", *PAIR)[0] == 0 and segments.count == 4
    assert _outputs(out) == _outputs(straight)


@pytest.mark.slow
def test_another_configuration_is_refused_and_force_redoes(tmp_path, capsys, fss_root, samic):
    out = tmp_path / "out"
    assert _bench(fss_root, out, *samic, "--classes", PAIR[0])[0] == 0
    before = _outputs(out)
    assert _bench(fss_root, out, *samic, "--classes", PAIR[0], "--shots", "2")[0] == 2
    assert "holds another run" in _error(capsys) and _outputs(out) == before
    assert _bench(fss_root, out, *samic, "--classes", PAIR[0], "--shots", "2", "--force")[0] == 0
    records = [json.loads(p.read_text()) for p in (out / "prompts").rglob("*.json")]
    assert len(records) == 4 and all(len(r["supports"]) == 2 for r in records)


def test_bad_inputs_are_one_line_and_leave_nothing(tmp_path, capsys, fss_root, perseg_root, samic):
    out = tmp_path / "out"
    classes = ["--classes", *PAIR]
    assert _bench(fss_root, out, *samic, *classes, "--split", "dev")[0] == 2
    assert "dataset.split must be one of train, val, test" in _error(capsys)
    assert _bench(fss_root, out, *samic, *classes, "--shots", "0")[0] == 2
    assert "episodes.shots must be an integer >= 1" in _error(capsys)
    assert _bench(fss_root, out, *samic, "--classes", "nope")[0] == 2
    assert "unknown class 'nope'" in _error(capsys)
    assert _bench(fss_root, out, *samic[:2], *classes)[0] == 2
    assert "needs a trained network: pass --samic" in _error(capsys)
    assert (
        _bench(
            perseg_root,
            out,
            *samic[:2],
            "--dataset",
            "perseg",
            "--prompter",
            "persam",
            "--shots",
            "5",
        )[0]
        == 2
    )
    assert "its protocol is 1-shot" in _error(capsys)
    assert _bench(perseg_root, out, *samic, "--dataset", "perseg", "--split", "val")[0] == 2
    assert "--split is FSS-1000's" in _error(capsys)
    yaml = tmp_path / "instances.yaml"
    yaml.write_text("segment:\n  instances: true\n")
    assert _bench(fss_root, out, *samic, *classes, "--config", str(yaml))[0] == 2
    assert "segment.instances must be false" in _error(capsys)
    broken = tmp_path / "broken"
    fss_tree(broken, {PAIR[0]: 4})
    (broken / PAIR[0] / "3.png").unlink()
    assert _bench(broken, out, *samic, "--classes", PAIR[0])[0] == 2
    assert "3.jpg: image has no mask 3.png" in _error(capsys)
    gray(broken / PAIR[0] / "3.png", np.zeros((10, 10), dtype=np.uint8))
    assert _bench(broken, out, *samic, "--classes", PAIR[0])[0] == 2
    assert "3.png: mask is 10x10 but its image" in _error(capsys)
    assert not out.exists()


@pytest.mark.slow
def test_report_images_decode_and_numbers_are_the_json(tmp_path, fss_root, samic):
    from PIL import Image

    out = tmp_path / "out"
    code, text = _bench(fss_root, out, *samic, "--classes", *PAIR, SIX, "--report", "--json")
    assert code == 0
    scores = json.loads(text)
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3  # per-class bars, best classes, worst classes
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    table = re.search(r'<table id="scores">.*?</table>', page).group(0)
    values = [float(v) for v in re.findall(r'data-value="([^"]+)"', table)]
    assert values[:2] == [scores["global"]["mIoU"], scores["global"]["FB-IoU"]]
    assert values[2:] == [89.0, 71.2, 87.0]  # SAMIC, PerSAM, Matcher (Table 1 order)
    per_class = re.search(r'<table id="per-class">.*?</table>', page).group(0)
    rows = re.findall(r'<td>([^<]+)</td><td class="num" data-value="([^"]+)"', per_class)
    assert {name: float(v) for name, v in rows} == scores["per_class"]
    assert 'src="http' not in page and "<script" not in page


def test_the_paper_configs_load():
    from samic_vos.pipelines.bench_fewshot import BenchFewshotConfig
    from samic_vos.runtime.config import load_config

    fss = load_config(BenchFewshotConfig(), REPO / "configs/fss1000.yaml")
    assert (fss.dataset.kind, fss.dataset.split, fss.episodes.shots, fss.episodes.seed) == (
        "fss1000",
        "test",
        1,
        0,
    )
    assert fss.episodes.sampling == "hsnet" and fss.segment.sam_model == "vit_h"
    perseg = load_config(BenchFewshotConfig(), REPO / "configs/perseg.yaml")
    assert (perseg.dataset.kind, perseg.episodes.shots) == ("perseg", 1)
    assert perseg.segment.prompter == "samic" == fss.segment.prompter
    assert perseg.segment.sam_model == "vit_h"
    assert perseg.segment.tracker.heat_sigma == 0.02 == fss.segment.tracker.heat_sigma


def test_new_references_replace_the_old_ones(tiny_models, fss_root):
    """An engine given references a second time segments as a fresh engine given them once."""
    import torch

    from samic_vos.inference.prompter import Reference, TrackerConfig
    from samic_vos.model.checkpoint import load_samic
    from samic_vos.sam.models import load_sam

    dataset = Fss1000Dataset(fss_root)
    first, second, target = (dataset.load(i) for i in dataset.items(PAIR[0])[:3])
    segmenter = SamSegmenter(load_sam(None, tiny_models["sam"], "cpu"), "cpu")
    net, _ = load_samic(tiny_models["samic"], torch.device("cpu"))

    def heat(engine: FewShotSegmenter) -> np.ndarray:
        return engine.prompter._heatmaps([target[0]])[0][1]

    used = FewShotSegmenter("samic", segmenter, net, TrackerConfig())
    used.set_references([Reference(first[0], first[1].astype(np.uint8))])
    used.set_references([Reference(second[0], second[1].astype(np.uint8))])
    fresh = FewShotSegmenter("samic", segmenter, net, TrackerConfig())
    fresh.set_references([Reference(second[0], second[1].astype(np.uint8))])
    np.testing.assert_array_equal(heat(used), heat(fresh))


@pytest.mark.slow
def test_two_straight_runs_in_fresh_processes_write_the_same_bytes(tmp_path, fss_root, samic):
    """Predictions and prompt points are a function of the inputs: two fresh processes, each
    filling freed memory with its own byte (MALLOC_PERTURB_), write the same files."""
    import os
    import subprocess
    import sys

    outs = []
    for fill in (37, 211):
        out = tmp_path / f"run_{fill}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_PERTURB_": str(fill)}
        command = [sys.executable, "-m", "samic_vos", "bench", "fewshot", "--root", str(fss_root)]
        command += ["-o", str(out), "-q", "--device", "cpu", *samic, "--classes", *PAIR]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        outs.append(_outputs(out))
    assert outs[0] and outs[0] == outs[1]


def test_shards_by_flag_torchrun_and_slurm_give_the_bytes_of_one_run(
    tmp_path, fss_root, samic, monkeypatch
):
    three = ["--classes", *PAIR, SIX]
    straight = tmp_path / "straight"
    code, text = _bench(fss_root, straight, *samic, *three, "--json")
    expected = json.loads(text)
    launches = {
        "flag": [{}, {}],
        "torchrun": [{"RANK": str(i), "WORLD_SIZE": "2", "LOCAL_RANK": str(i)} for i in (1, 0)],
        "slurm": [{"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_COUNT": "2"} for i in (0, 1)],
    }
    for name, envs in launches.items():
        out = tmp_path / name
        for n, env in enumerate(envs):
            flag = ["--shard", f"{n}/2"] if name == "flag" else []
            with monkeypatch.context() as patch:
                for key, value in env.items():
                    patch.setenv(key, value)
                code, text = _bench(fss_root, out, *samic, *three, "--json", *flag)
            assert code == 0
            if n == 0:  # the first shard alone: its classes only, no scores, merge refused
                classes = {p.name for p in (out / "pred").iterdir()}
                assert text == "" and 0 < len(classes) < 3 and not (out / "scores.json").exists()
                assert _bench(fss_root, out, *samic, *three, "--merge")[0] == 2
        scores = json.loads(text)
        assert _outputs(out) == _outputs(straight), name
        assert (
            scores["global"] == expected["global"] and scores["per_class"] == expected["per_class"]
        )
        code, text = _bench(fss_root, out, *samic, *three, "--merge", "--json")
        assert code == 0 and json.loads(text)["global"] == expected["global"]
