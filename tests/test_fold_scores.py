"""PASCAL-5i and COCO-20i scores against HSNet's evaluator restated in torch
(tests/hsnet_reference.py): the 255 band, empty masks, classes without episodes, HSNet's K-shot
vote, the evaluation size, and folds combined from their per-class sums."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fold_trees import pascal_tree
from hsnet_reference import hsnet_scores
from hsnet_reference import hsnet_vote as reference_vote
from PIL import Image

from samic_vos.data.fewshot_episodes import EpisodeConfig, pascal_episodes
from samic_vos.data.mask_io import write_mask
from samic_vos.data.pascal import PASCAL_CLASSES, Pascal5iDataset
from samic_vos.eval.fewshot_eval import eval_size, prediction_path, score_predictions
from samic_vos.eval.fewshot_folds import combine_folds
from samic_vos.eval.fewshot_metrics import HsnetMeter, hsnet_vote
from samic_vos.runtime.errors import UserError


def _label_maps(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A PASCAL-like label map: blobs of values 1..20, a 255 band around each, some empty."""
    labels = np.zeros(shape, dtype=np.uint8)
    for _ in range(rng.integers(0, 4)):
        r, c = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        h, w = rng.integers(2, shape[0] - r + 1), rng.integers(2, shape[1] - c + 1)
        labels[r : r + h, c : c + w] = 255
        labels[r + 1 : r + h - 1, c + 1 : c + w - 1] = rng.integers(1, 21)
    return labels


@pytest.mark.parametrize("size", [(400, 400), None])
def test_random_episodes_score_as_hsnet(size) -> None:
    """300 episodes over the 5 classes of fold 1 (one without episodes): random label maps
    with 255 bands and other classes, random and empty predictions."""
    rng = np.random.default_rng(7)
    fold = [5, 6, 7, 8, 9]
    meter = HsnetMeter([PASCAL_CLASSES[c] for c in fold], eval_size=size)
    episodes = []
    for k in range(300):
        shape = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        labels = _label_maps(rng, shape)
        class_id = fold[k % 4]  # class 9 (fold[4]) never has an episode
        if k % 3 == 0:
            labels[labels == 255] = class_id + 1  # the class next to the band
        pred = (rng.random(shape) < 0.3) if k % 7 else np.zeros(shape, dtype=bool)
        episodes.append((class_id, pred.astype(np.uint8), labels))
        meter.update(PASCAL_CLASSES[class_id], pred, labels == class_id + 1, labels == 255)
    miou, fb_iou, per_class = hsnet_scores(episodes, fold, 20, size, ignore=True)
    assert meter.miou() == pytest.approx(miou, abs=1e-4)
    assert meter.fb_iou() == pytest.approx(fb_iou, abs=1e-4)
    assert list(meter.per_class().values()) == pytest.approx(per_class.tolist(), abs=1e-4)
    assert meter.per_class()[PASCAL_CLASSES[9]] == 0.0  # counted in the mean, as HSNet does


def test_the_255_band_counts_nowhere() -> None:
    # 1 x 6: gt fg at 1..2, band at 3..4; prediction covers 1..4.
    gt = np.array([[0, 1, 1, 0, 0, 0]], dtype=bool)
    void = np.array([[0, 0, 0, 1, 1, 0]], dtype=bool)
    pred = np.array([[0, 1, 1, 1, 1, 0]], dtype=bool)
    meter = HsnetMeter(["a"])
    meter.update("a", pred, gt, void)
    assert meter.sums() == {"a": {"intersection": [2, 2], "union": [2, 2]}}
    assert meter.miou() == 100.0 and meter.fb_iou() == 100.0
    plain = HsnetMeter(["a"])
    plain.update("a", pred, gt)  # without the void the band is a false positive
    assert plain.miou() == pytest.approx(50.0)


def test_an_all_void_or_empty_episode_adds_nothing_but_zeros() -> None:
    meter = HsnetMeter(["a", "b"])
    ones = np.ones((2, 3), dtype=bool)
    meter.update("a", ones, ones, void=ones)  # everything void
    meter.update("b", np.zeros((2, 3), bool), np.zeros((2, 3), bool))  # empty both
    assert meter.sums() == {
        "a": {"intersection": [0, 0], "union": [0, 0]},
        "b": {"intersection": [6, 0], "union": [6, 0]},
    }
    assert meter.per_class() == {"a": 0.0, "b": 0.0}
    assert math.isnan(meter.fb_iou())  # no foreground anywhere: 0 / 0, NaN as in HSNet's torch


def test_hsnet_vote_is_predict_mask_nshot() -> None:
    rng = np.random.default_rng(3)
    for trial in range(50):
        masks = [rng.random((9, 11)) < 0.4 for _ in range(5)]
        if trial % 5 == 0:
            masks = [masks[0]] * 3 + masks[3:]  # a support drawn three times
        if trial % 7 == 0:
            masks = [np.zeros((9, 11), bool)] * 4 + [masks[0]]  # one support sees the class
        ours = hsnet_vote(masks)
        theirs = reference_vote([torch.from_numpy(m.astype(np.int64)) for m in masks])
        assert np.array_equal(ours, theirs.numpy() > 0.5)
    two_of_five = [np.array([[1, 1, 0]], bool)] * 2 + [np.array([[0, 1, 0]], bool)] * 3
    assert hsnet_vote(two_of_five).tolist() == [[False, True, False]]  # max vote 5
    weak = [np.array([[1, 0, 0]], bool), np.array([[0, 1, 0]], bool)] + [np.zeros((1, 3), bool)] * 3
    assert hsnet_vote(weak).tolist() == [[True, True, False]]  # max vote 1: one vote is half
    assert not hsnet_vote([np.zeros((2, 2), bool)] * 5).any()


def test_saved_predictions_of_a_pascal_fold_score_as_hsnet(tmp_path: Path) -> None:
    """The whole chain on a PASCAL-5i tree: per-episode files (queries come back), label maps
    with 255 bands and another class, HSNet's 400 x 400 or the original size."""
    root = pascal_tree(tmp_path / "voc", 0)
    dataset = Pascal5iDataset(root, 0)
    episodes = pascal_episodes(dataset, EpisodeConfig(count=400))
    pred_dir, rng = tmp_path / "pred", np.random.default_rng(0)
    reference = []
    for episode in episodes:
        labels = np.asarray(Image.open(episode.query.mask))
        value = PASCAL_CLASSES.index(episode.class_name) + 1
        pred = (labels == value) | (labels == 255)  # the class and its band
        pred &= rng.random(labels.shape) < 0.8
        path = prediction_path(pred_dir, episode)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mask(path, pred.astype(np.uint8))
        reference.append((value - 1, pred.astype(np.uint8), labels))
    assert len(list(pred_dir.rglob("*.png"))) == 400  # entry k and k + 346: two files
    for size in ("auto", "original", 100):
        counted = eval_size("pascal5i", size)
        scores = score_predictions(dataset, episodes, pred_dir, size)
        miou, fb_iou, _ = hsnet_scores(reference, [0, 1, 2, 3, 4], 20, counted, ignore=True)
        assert scores["global"]["mIoU"] == pytest.approx(miou, abs=1e-4)
        assert scores["global"]["FB-IoU"] == pytest.approx(fb_iou, abs=1e-4)
    assert eval_size("pascal5i") == (400, 400) and eval_size("folder") is None
    with pytest.raises(UserError, match="PerSeg is scored at the masks' own size"):
        eval_size("perseg", 400)


def _fold_run(fold: int, classes: dict[str, tuple[int, int]], shots: int = 1) -> dict:
    """A scored run's scores.json content: per class (foreground I, U), background (10, 20)."""
    meter = HsnetMeter(list(classes))
    meter.add_sums(
        {n: {"intersection": [10, i], "union": [20, u]} for n, (i, u) in classes.items()}
    )
    config = {"dataset": {"kind": "pascal5i", "fold": fold, "classes": None}, "episodes": {}}
    return {
        **meter.summary(),
        "dataset": "pascal5i",
        "fold": fold,
        "shots": shots,
        "eval_size": [400, 400],
        "episodes": 1000,
        "config": config,
    }


def test_folds_combine_from_their_sums() -> None:
    names = [PASCAL_CLASSES[5 * f : 5 * f + 5] for f in range(4)]
    runs = [
        (f"f{f}", _fold_run(f, {n: (k + f, 10) for k, n in enumerate(names[f])})) for f in (1, 2, 3)
    ]
    half = {n: (k, 10) for k, n in enumerate(names[0])}
    first = dict(list(half.items())[:2])
    rest = dict(list(half.items())[2:])
    table = combine_folds([("a", _fold_run(0, first)), ("b", _fold_run(0, rest)), *runs])
    whole = _fold_run(0, half)
    assert table["folds"]["0"]["mIoU"] == pytest.approx(whole["global"]["mIoU"])
    assert table["folds"]["0"]["FB-IoU"] == pytest.approx(whole["global"]["FB-IoU"])
    assert table["folds"]["0"]["episodes"] == 2000 and table["complete"]
    fold_mious = [100 * (2 + f) / 10 for f in range(4)]  # mean of k + f over k = 0..4, / 10
    assert [table["folds"][str(f)]["mIoU"] for f in range(4)] == pytest.approx(fold_mious)
    assert table["mean"]["mIoU"] == pytest.approx(np.mean(fold_mious))
    assert not combine_folds(runs)["complete"]  # fold 0 missing
    with pytest.raises(UserError, match="b: scores class 'aeroplane' of fold 0 again"):
        combine_folds([("a", _fold_run(0, half)), ("b", _fold_run(0, first))])
    with pytest.raises(UserError, match="pascal5i 5-shot, but a is pascal5i 1-shot"):
        combine_folds([("a", _fold_run(0, half)), ("b", _fold_run(1, half, shots=5))])
    with pytest.raises(UserError, match="not a scored PASCAL-5i or COCO-20i fold"):
        combine_folds([("x", {"dataset": "fss1000", "global": {}})])
