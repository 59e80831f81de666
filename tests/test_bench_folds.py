"""`samic-vos bench fewshot` on PASCAL-5i and COCO-20i end to end, on tiny random-weight models and
tiny trees of the images HSNet's lists name: the episode list, scores equal to the written
masks', per-episode predictions, HSNet's K-shot vote, resume after an interrupt, the folds side
by side, and bad inputs."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from fewshot_trees import fss_tree
from fold_trees import coco_tree, pascal_tree
from hsnet_reference import hsnet_pascal_test
from test_bench_fewshot import Calls, _error, _outputs

from samic_vos.commands.cli import main
from samic_vos.data.coco import Coco20iDataset
from samic_vos.data.fewshot_episodes import EpisodeConfig, coco_episodes, pascal_episodes
from samic_vos.data.fold_sets import read_split_list
from samic_vos.data.pascal import PASCAL_CLASSES, Pascal5iDataset
from samic_vos.eval.fewshot_eval import score_predictions
from samic_vos.inference.fewshot_engine import FewShotSegmenter


@pytest.fixture(scope="module")
def pascal_root(tmp_path_factory) -> Path:
    return pascal_tree(tmp_path_factory.mktemp("pascal"), 0)


@pytest.fixture(scope="module")
def samic(tiny_models) -> list[str]:
    return ["--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"])]


def _cli(*argv: str) -> tuple[int, str]:
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        code = main(["bench", "fewshot", "-q", *argv])
    return code, stdout.getvalue()


def _bench(root: Path, out: Path, *extra: str) -> tuple[int, str]:
    return _cli("--root", str(root), "-o", str(out), "--device", "cpu", *extra)


def test_the_episode_list_needs_the_layout_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # where the default OUT (runs/...) would go
    for folder in ("VOC2012/JPEGImages", "VOC2012/SegmentationClassAug", "COCO2014/val2014"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "COCO2014/annotations/val2014").mkdir(parents=True)
    code, text = _cli(
        "--dataset",
        "pascal5i",
        "--fold",
        "2",
        "--shots",
        "5",
        "--root",
        str(tmp_path),
        "--episodes",
    )
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == "episode,class,query,supports" and len(lines) == 1001
    lists = [f"{n}__{c + 1:02d}" for n, c in read_split_list("pascal5i", "val", 2)]
    for line, (query, class_id, supports) in zip(
        lines[1:], hsnet_pascal_test(lists, 5), strict=True
    ):
        number, name, path, support_paths = line.split(",")
        assert name == PASCAL_CLASSES[class_id]
        assert path == f"VOC2012/JPEGImages/{query}.jpg"
        assert support_paths == "|".join(f"VOC2012/JPEGImages/{s}.jpg" for s in supports)
    code, text = _cli(
        "--dataset", "coco20i", "--fold", "3", "--root", str(tmp_path / "COCO2014"), "--episodes"
    )
    assert code == 0 and len(text.splitlines()) == 1001
    assert text.splitlines()[1].split(",")[2].startswith("val2014/COCO_val2014_")
    assert not list(tmp_path.rglob("*.png")) and not Path("runs").exists()  # nothing written


def test_the_episode_list_of_every_layout(tmp_path: Path) -> None:
    root = fss_tree(tmp_path / "fss", {"accordion": 3})
    code, text = _cli("--root", str(root), "--episodes", "--classes", "accordion")
    assert code == 0
    assert text.splitlines()[1].startswith("0,accordion,accordion/1.jpg,accordion/")
    assert len(text.splitlines()) == 4


@pytest.mark.slow
def test_pascal_fold_end_to_end_and_resume(tmp_path, pascal_root, samic, monkeypatch) -> None:
    args = ("--dataset", "pascal5i", "--fold", "0", "--episode-count", "5", *samic)
    straight = tmp_path / "straight"
    code, text = _bench(pascal_root, straight, *args, "--json")
    assert code == 0
    scores = json.loads(text)
    dataset = Pascal5iDataset(pascal_root, 0)
    episodes = pascal_episodes(dataset, EpisodeConfig(count=5))
    expected = score_predictions(dataset, episodes, straight / "pred")
    assert (scores["global"], scores["per_class"]) == (expected["global"], expected["per_class"])
    assert scores["sums"] == expected["sums"] and set(scores["sums"]) == set(PASCAL_CLASSES[:5])
    assert (scores["dataset"], scores["fold"], scores["eval_size"]) == ("pascal5i", 0, [400, 400])
    assert scores["episodes"] == 5 and scores["published"] == {}
    names = sorted(
        p.relative_to(straight / "pred").as_posix() for p in (straight / "pred").rglob("*.png")
    )
    assert names == sorted(f"{e.class_name}/{e.name}.png" for e in episodes)
    # Interrupted after 2 episodes (Ctrl-C), then resumed: the bytes of the straight run.
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        Calls(patch, FewShotSegmenter, "segment", stop_at=2)
        assert _bench(pascal_root, out, *args)[0] == 130
    assert len(list((out / "pred").rglob("*.png"))) == 2 and not (out / "scores.json").exists()
    segments = Calls(monkeypatch, FewShotSegmenter, "segment")
    code, text = _bench(pascal_root, out, *args, "--json")
    assert code == 0 and segments.count == 3
    assert _outputs(out) == _outputs(straight)
    assert json.loads(text)["sums"] == scores["sums"]
    code, table = _bench(pascal_root, out, *args)
    assert code == 0 and "PASCAL-5i fold 0, 1-shot: 5 episodes, 5 classes" in table


@pytest.mark.slow
def test_five_shot_by_hsnets_vote(tmp_path, pascal_root, samic, monkeypatch) -> None:
    segments = Calls(monkeypatch, FewShotSegmenter, "segment")
    out = tmp_path / "out"
    args = ("--dataset", "pascal5i", "--shots", "5", "--kshot", "vote", "--episode-count", "2")
    assert _bench(pascal_root, out, *args, *samic)[0] == 0
    episodes = pascal_episodes(Pascal5iDataset(pascal_root, 0), EpisodeConfig(shots=5, count=2))
    assert segments.count == 10  # one 1-shot prediction per support, repeats included
    for episode in episodes:
        record = json.loads(
            (out / "prompts" / episode.class_name / f"{episode.name}.json").read_text()
        )
        assert len(record["votes"]) == 5 and record["supports"] == [
            s.name for s in episode.supports
        ]
    config = json.loads((out / "scores.json").read_text())["config"]
    assert config["protocol"] == {"kshot": "vote", "eval_size": "auto"}


@pytest.mark.slow
@pytest.mark.parametrize("masks", ["png", "json"])
def test_coco_fold_end_to_end(tmp_path, samic, masks, monkeypatch) -> None:
    empty = tmp_path / "layout"
    for folder in ("COCO2014/val2014", "COCO2014/annotations/val2014"):
        (empty / folder).mkdir(parents=True)
    episodes = coco_episodes(Coco20iDataset(empty, 1), EpisodeConfig(count=3))
    used = {item.image.stem for e in episodes for item in (e.query, *e.supports)}
    root = coco_tree(tmp_path / "coco", used, 1, masks)
    out = tmp_path / "out"
    code, text = _bench(
        root,
        out,
        "--dataset",
        "coco20i",
        "--fold",
        "1",
        "--episode-count",
        "3",
        "--eval-size",
        "original",
        "--json",
        *samic,
    )
    assert code == 0
    scores = json.loads(text)
    dataset = Coco20iDataset(root, 1)
    assert dataset.masks == masks
    expected = score_predictions(
        dataset, coco_episodes(dataset, EpisodeConfig(count=3)), out / "pred", "original"
    )
    assert scores["global"] == expected["global"] and scores["eval_size"] == "original"
    assert scores["classes"] == 20 and len(list((out / "pred").rglob("*.png"))) == 3
    # Interrupted after the first episode, then resumed: the same bytes.
    again = tmp_path / "again"
    args = ("--dataset", "coco20i", "--fold", "1", "--episode-count", "3", *samic)
    with monkeypatch.context() as patch:
        Calls(patch, FewShotSegmenter, "segment", stop_at=1)
        assert _bench(root, again, *args, "--eval-size", "original")[0] == 130
    assert _bench(root, again, *args, "--eval-size", "original")[0] == 0
    assert _outputs(again) == _outputs(out)


def test_folds_side_by_side(tmp_path: Path, capsys) -> None:
    runs = []
    for fold in range(4):
        run = tmp_path / f"fold{fold}"
        run.mkdir()
        classes = PASCAL_CLASSES[5 * fold : 5 * fold + 5]
        sums = {n: {"intersection": [10, fold + 1], "union": [20, 10]} for n in classes}
        config = {"dataset": {"kind": "pascal5i", "fold": fold}, "episodes": {"shots": 1}}
        scores = {"dataset": "pascal5i", "fold": fold, "shots": 1, "eval_size": [400, 400]}
        scores.update(sums=sums, episodes=1000, config=config)
        (run / "scores.json").write_text(json.dumps(scores))
        runs.append(str(run))
    code, text = _cli("--combine", *runs)
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == "PASCAL-5i, 1-shot, 4 fold(s)"
    assert lines[1].split() == [
        "metric",
        "fold",
        "0",
        "fold",
        "1",
        "fold",
        "2",
        "fold",
        "3",
        "mean",
    ]
    assert lines[2].split() == ["mIoU", "10.0", "20.0", "30.0", "40.0", "25.0"]
    assert json.loads(_cli("--combine", *runs, "--json")[1])["mean"]["mIoU"] == 25.0
    assert _cli("--combine", runs[0], str(tmp_path / "nothing"))[0] == 2
    assert "nothing/scores.json: cannot read a run's scores" in _error(capsys)


def test_bad_inputs_are_one_line_and_leave_nothing(tmp_path, capsys, pascal_root, samic) -> None:
    out = tmp_path / "out"
    fss = fss_tree(tmp_path / "fss", {"accordion": 3})
    assert _bench(fss, out, "--dataset", "pascal5i", *samic)[0] == 2
    assert "not the expected layout; pass a PASCAL VOC2012 folder" in _error(capsys)
    assert _bench(pascal_root, out, "--dataset", "coco20i", *samic)[0] == 2
    assert "not the expected layout; pass a COCO 2014 folder" in _error(capsys)
    assert _bench(pascal_root, out, "--dataset", "pascal5i", "--fold", "4", *samic)[0] == 2
    assert "dataset.fold must be one of 0, 1, 2, 3, got 4" in _error(capsys)
    assert _bench(fss, out, "--fold", "1", *samic)[0] == 2
    assert "--fold is PASCAL-5i's and COCO-20i's" in _error(capsys)
    assert _bench(pascal_root, out, "--dataset", "pascal5i", "--eval-size", "big", *samic)[0] == 2
    assert "protocol.eval_size must be auto, original or an integer >= 1" in _error(capsys)
    assert _cli("--dataset", "pascal5i", "--episodes")[0] == 2
    assert "needs --root ROOT" in _error(capsys)
    # A support of episode 0 missing from the tree: named with the list that names it.
    broken = pascal_tree(tmp_path / "broken", 0)
    episode = pascal_episodes(Pascal5iDataset(broken, 0), EpisodeConfig(count=1))[0]
    episode.supports[0].image.unlink()
    assert _bench(broken, out, "--dataset", "pascal5i", "--episode-count", "1", *samic)[0] == 2
    message = _error(capsys)
    assert (
        f"{episode.supports[0].image}: image not found, named by pascal5i val_fold0.txt" in message
    )
    assert not out.exists()


def test_the_fold_configs_load() -> None:
    from samic_vos.pipelines.bench_fewshot import BenchFewshotConfig
    from samic_vos.runtime.config import load_config

    repo = Path(__file__).resolve().parents[1]
    for kind in ("pascal5i", "coco20i"):
        config = load_config(BenchFewshotConfig(), repo / f"configs/{kind}.yaml")
        assert (config.dataset.kind, config.dataset.fold, config.episodes.sampling) == (
            kind,
            0,
            "hsnet",
        )
        assert (config.protocol.eval_size, config.protocol.kshot) == (400, "average")
        assert config.segment.sam_model == "vit_h" and config.episodes.seed == 0
