"""Kvasir-SEG, NWPU VHR-10 and LabelMe end to end on tiny random-weight models and tiny trees:
`train --fewshot` on 20% of the train list, `bench fewshot` with the trained network, `eval
fewshot` giving bench's numbers, resume after Ctrl-C to the same bytes; the training sides of
PASCAL-5i and COCO-20i folds (the held-out fold's classes never trained)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml
from fold_trees import coco_tree
from listed_trees import kvasir_tree, labelme_tree, nwpu_tree
from test_bench_fewshot import Calls, _outputs
from test_fewshot_train_cli import TINY

from samic_vos.commands.cli import main
from samic_vos.data.coco import COCO_CLASSES, coco_fold_classes
from samic_vos.data.fewshot_readers import open_training_set
from samic_vos.data.fold_sets import read_split_list
from samic_vos.data.listed_sets import read_names
from samic_vos.data.pascal import PASCAL_CLASSES
from samic_vos.inference.fewshot_engine import FewShotSegmenter
from samic_vos.runtime.errors import UserError
from samic_vos.training.fewshot_pairs import FewShotPairConfig, chosen_items, pairs_from_fewshot


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def _bench(root: Path, out: Path, *extra: str) -> tuple[int, str]:
    argv = ("bench", "fewshot", "--root", str(root), "-o", str(out), "-q", "--device", "cpu")
    return _cli(*argv, *extra)


def _eval(pred: Path, root: Path, *extra: str) -> dict:
    code, text = _cli("eval", "fewshot", str(pred), "--root", str(root), "--json", *extra)
    assert code == 0
    return json.loads(text)


def _train(tmp_path: Path, run: Path, *source: str) -> tuple[int, str]:
    """A tiny network trained on ``source`` into ``run`` (1 epoch and 20% unless given)."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    args = ("train", *source, "-o", str(run), "--config", str(tmp_path / "tiny.yaml"))
    epochs = () if "--epochs" in source else ("--epochs", "1")
    fraction = () if "--train-fraction" in source else ("--train-fraction", "0.2")
    return _cli(*args, "--input-size", "64", "--random-backbone", *epochs, *fraction)


SCORED = ("global", "per_class", "sums", "published", "protocol", "episodes", "classes")


@pytest.mark.slow
def test_labelme_train_bench_eval_resume(tmp_path, tiny_models, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path / "home"))
    root = labelme_tree(tmp_path / "lm")
    run = tmp_path / "run"
    code, best = _train(tmp_path, run, "--fewshot", "labelme", "--root", str(root))
    assert code == 0
    # 20% of the train list (site/1, 2, 3, 5): landslide's 4 images -> 2 (at least two), 2
    # ordered pairs; road has one train image (site/2): no pair. Test images never train.
    assert "2 training and 0 validation pairs" in capsys.readouterr().err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["fewshot"]["train_fraction"] == 0.2
    samic = ("--sam-checkpoint", str(tiny_models["sam"]), "--samic", best.strip())
    args = ("--dataset", "labelme", *samic)
    straight = tmp_path / "straight"
    code, text = _bench(root, straight, *args, "--json")
    assert code == 0
    scores = json.loads(text)
    assert scores["episodes"] == 4 and scores["classes"] == 2
    assert scores["published"] == {
        "SAMIC (paper, ViT-H)": 88.2,
        "PerSAM (ViT-H)": 36.3,
        "Matcher (ViT-G)": 52.9,
    }
    assert scores["protocol"]["supports"].endswith("test.txt, never the query")
    assert scores["protocol"]["queries"].startswith("every image of ")
    assert scores["eval_size"] == "original"
    evaluated = _eval(straight / "pred", root, "--dataset", "labelme")
    assert {k: evaluated[k] for k in SCORED} == {k: scores[k] for k in SCORED}
    # Ctrl-C after 2 episodes, then the same command: the bytes of the straight run.
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        Calls(patch, FewShotSegmenter, "segment", stop_at=2)
        assert _bench(root, out, *args)[0] == 130
    assert len(list((out / "pred").rglob("*.png"))) == 2 and not (out / "scores.json").exists()
    segments = Calls(monkeypatch, FewShotSegmenter, "segment")
    code, table = _bench(root, out, *args)
    assert code == 0 and segments.count == 2 and _outputs(out) == _outputs(straight)
    assert "published: 1-shot mIoU on TSMU landslide" in table
    row = next(line for line in table.splitlines() if "SAMIC (paper, ViT-H), 1-shot" in line)
    assert row.split()[-1] == "88.2"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kvasir", "nwpu-vhr10"])
def test_listed_bench_and_eval(tmp_path, tiny_models, kind) -> None:
    root = (kvasir_tree if kind == "kvasir" else nwpu_tree)(tmp_path / kind)
    samic = ("--sam-checkpoint", str(tiny_models["sam"]), "--samic", str(tiny_models["samic"]))
    flags = ("--dataset", kind, "--episode-count", "3", "--shots", "2")
    out = tmp_path / "out"
    code, text = _bench(root, out, *flags, *samic, "--json")
    assert code == 0
    scores = json.loads(text)
    assert scores["episodes"] == 3 and scores["shots"] == 2
    assert scores["protocol"]["shots"] == 2 and scores["protocol"]["sampling"] == "hsnet"
    assert scores["protocol"]["queries"].startswith("the first 3 episodes of: every image of ")
    # NWPU's vehicle is in no test image: not a class of the test, not in mIoU.
    assert scores["classes"] == len(scores["per_class"]) == (1 if kind == "kvasir" else 9)
    assert "vehicle" not in scores["per_class"]
    published = {"kvasir": 69.3, "nwpu-vhr10": 70.1}[kind]
    assert scores["published"]["SAMIC (paper, ViT-H)"] == published
    evaluated = _eval(out / "pred", root, *flags)
    assert {k: evaluated[k] for k in SCORED} == {k: scores[k] for k in SCORED}
    # Another method's folder: a missing prediction is one line, exit 2.
    next((out / "pred").rglob("*.png")).unlink()
    code, text = _cli("eval", "fewshot", str(out / "pred"), "--root", str(root), *flags)
    assert code == 2 and text == ""


def test_kvasir_and_nwpu_train_on_their_train_lists(tmp_path: Path) -> None:
    kvasir = open_training_set("kvasir", kvasir_tree(tmp_path / "k"))
    chosen = chosen_items("polyp", kvasir.items("polyp"), FewShotPairConfig())
    assert len(chosen) == 176  # 20% of the 880 train images
    val = set(read_names("kvasir", "val"))
    assert not any(item.name in val for item in chosen)
    nwpu = open_training_set("nwpu-vhr10", nwpu_tree(tmp_path / "n"))
    pairs = pairs_from_fewshot(nwpu, FewShotPairConfig(train_fraction=0.05))
    assert {p.sequence for p in pairs} == set(nwpu.classes) and len(nwpu.classes) == 10
    assert all(int(p.ref_frame.stem) % 5 and int(p.tgt_frame.stem) % 5 for p in pairs)


def test_pascal_fold_trains_on_the_other_folds(tmp_path: Path) -> None:
    for folder in ("JPEGImages", "SegmentationClassAug"):
        (tmp_path / "VOC2012" / folder).mkdir(parents=True)
    for fold in range(4):
        dataset = open_training_set("pascal5i", tmp_path, fold=fold)
        held_out = set(PASCAL_CLASSES[5 * fold : 5 * fold + 5])
        assert set(dataset.classes) == set(PASCAL_CLASSES) - held_out
        lists = [read_split_list("pascal5i", "train", g) for g in range(4) if g != fold]
        assert len(dataset) == sum(len(entries) for entries in lists)
        val = {name for name, _ in read_split_list("pascal5i", "val", fold)}
        assert not any(i.image.stem in val for c in dataset.classes for i in dataset.items(c))


def test_coco_fold_trains_on_train2014_of_the_other_folds(tmp_path: Path) -> None:
    """The instances JSON of train2014 (a tiny one, written like val2014's)."""
    names = [n for n, _ in read_split_list("coco20i", "val", 1)][:40]
    root = coco_tree(tmp_path, names, 1, "json") / "COCO2014"
    (root / "val2014").rename(root / "train2014")
    (root / "annotations/instances_val2014.json").rename(
        root / "annotations/instances_train2014.json"
    )
    dataset = open_training_set("coco20i", tmp_path, fold=0)
    fold1 = {COCO_CLASSES[c] for c in coco_fold_classes(1)}
    assert set(dataset.classes) <= fold1 and not set(dataset.classes) & {
        COCO_CLASSES[c] for c in coco_fold_classes(0)
    }
    item = dataset.items(dataset.classes[0])[0]
    assert dataset.read_mask(item).sum() > 0 and dataset.mask_size(item) == (40, 52)
    # The tree's images hold fold-1 classes only: held out, fold 1 has nothing to train on.
    with pytest.raises(UserError, match="holds no class of labelled images"):
        open_training_set("coco20i", tmp_path, fold=1)


def test_the_configs_load() -> None:
    from samic_vos.pipelines.bench_fewshot import BenchFewshotConfig
    from samic_vos.runtime.config import load_config

    repo = Path(__file__).resolve().parents[1]
    kvasir = load_config(BenchFewshotConfig(), repo / "configs/kvasir.yaml")
    nwpu = load_config(BenchFewshotConfig(), repo / "configs/nwpu_vhr10.yaml")
    assert (kvasir.dataset.kind, kvasir.episodes.supports) == ("kvasir", "train")
    assert (nwpu.dataset.kind, nwpu.episodes.supports) == ("nwpu-vhr10", "test")
    assert kvasir.segment.sam_model == nwpu.segment.sam_model == "vit_h"


@pytest.mark.slow
def test_train_on_a_pascal_fold(tmp_path, monkeypatch, capsys) -> None:
    """`train --fewshot pascal5i --fold 0`: only the images the draw chooses are written; the
    pairs are of the 15 other classes."""
    from fold_trees import _picture, label_map, write_labels

    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path / "home"))
    voc = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClassAug"):
        (voc / folder).mkdir(parents=True)
    dataset = open_training_set("pascal5i", tmp_path, fold=0)
    config = FewShotPairConfig(train_fraction=0.0001)
    for seed, name in enumerate(dataset.classes):
        for item in chosen_items(name, dataset.items(name), config):
            ((_, value),) = item.parts
            _picture(item.image, seed)
            write_labels(item.mask, label_map([value], void=True))
    run = tmp_path / "run"
    fold = ("--fewshot", "pascal5i", "--fold", "0", "--root", str(tmp_path))
    assert _train(tmp_path, run, *fold, "--train-fraction", "0.0001")[0] == 0
    # 2 images (the minimum) of each of the 15 classes: 2 ordered pairs each; 5 classes held out.
    assert "20 training and 10 validation pairs" in capsys.readouterr().err
    trained = yaml.safe_load((run / "config.yaml").read_text())
    assert trained["fewshot"]["fold"] == 0
    assert not set(trained["run"]["val_sequences"]) & set(PASCAL_CLASSES[:5])


@pytest.mark.slow
def test_a_listed_training_resumes_after_ctrl_c(tmp_path, monkeypatch) -> None:
    """Ctrl-C after epoch 1 of 2 (SIGINT's KeyboardInterrupt), then --resume: epoch 2 runs from
    latest.pt and ends where an uninterrupted run ends (up to float rounding, as DAVIS runs)."""
    import samic_vos.training.trainer as trainer

    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path / "home"))
    root = nwpu_tree(tmp_path / "nwpu")
    source = ("--fewshot", "nwpu-vhr10", "--root", str(root), "--train-fraction", "0.02")
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert _train(tmp_path, straight, *source, "--epochs", "2")[0] == 0
    real = trainer._save
    with monkeypatch.context() as patch:

        def stop_after_saving(*args, **kwargs):
            real(*args, **kwargs)  # epoch 1's latest.pt, best.pt and history.json
            raise KeyboardInterrupt

        patch.setattr(trainer, "_save", stop_after_saving)
        assert _train(tmp_path, cut, *source, "--epochs", "2")[0] == 130
    assert [h["epoch"] for h in json.loads((cut / "history.json").read_text())] == [1]
    assert _train(tmp_path, cut, *source, "--epochs", "2", "--resume")[0] == 0
    history = json.loads((cut / "history.json").read_text())
    expected = json.loads((straight / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    for got, want in zip(history, expected, strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
