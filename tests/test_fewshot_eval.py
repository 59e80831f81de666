"""Scoring predicted masks saved per class against a few-shot dataset's protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fewshot_trees import H, W, gray, image, perseg_tree, square

from samic_vos.data.fewshot_episodes import EpisodeConfig, fss_episodes, perseg_episodes
from samic_vos.data.fewshot_sets import (
    FolderDataset,
    Fss1000Dataset,
    PerSegDataset,
    fss_split_classes,
)
from samic_vos.data.mask_io import write_mask
from samic_vos.eval.fewshot_eval import meter_for, prediction_path, score_predictions
from samic_vos.eval.fewshot_metrics import HsnetMeter, PersamMeter
from samic_vos.runtime.errors import UserError


def test_perseg_predictions_scored_as_persam(tmp_path: Path) -> None:
    dataset = PerSegDataset(perseg_tree(tmp_path / "perseg"))
    episodes = perseg_episodes(dataset)
    pred = tmp_path / "pred"
    for episode in episodes:
        path = prediction_path(pred, episode)
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = np.zeros((H, W), dtype=np.uint8)
        if episode.class_name == "dog":
            ids[2:6, 3:6] = 1  # half of the 24-pixel square: IoU 12/24 per target
        write_mask(path, ids)  # can: empty predictions, IoU 0
    summary = score_predictions(dataset, episodes, pred)
    assert summary["per_class"] == {"can": 0.0, "dog": pytest.approx(50.0)}
    assert summary["global"] == {"mIoU": pytest.approx(25.0)}
    prediction_path(pred, episodes[-1]).unlink()
    with pytest.raises(UserError, match="dog/02.png: prediction of query .* not found"):
        score_predictions(dataset, episodes, pred)


def test_folder_predictions_scored_as_hsnet(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name in ("a", "b"):
        for k in range(2):
            image(root / "images" / name / f"{k}.jpg")
            gray(root / "masks" / name / f"{k}.png", square())
    dataset = FolderDataset(root)
    episodes = fss_episodes(dataset, EpisodeConfig())
    pred = tmp_path / "pred"
    for episode in episodes:  # perfect predictions of class a, full-image ones of class b
        mask = square() if episode.class_name == "a" else np.full((H, W), 255, np.uint8)
        gray(prediction_path(pred, episode), mask)
    summary = score_predictions(dataset, episodes, pred)
    pixels = H * W
    assert summary["per_class"] == {"a": 100.0, "b": pytest.approx(100 * 24 / pixels)}
    background = 2 * (pixels - 24) / (4 * (pixels - 24))  # b's bg: I 0, U pixels - 24
    foreground = 4 * 24 / (2 * 24 + 2 * pixels)
    assert summary["global"]["FB-IoU"] == pytest.approx(100 * (background + foreground) / 2)
    gray(prediction_path(pred, episodes[0]), np.zeros((H + 1, W), np.uint8))
    with pytest.raises(UserError, match="prediction is 16x13 but the ground truth"):
        score_predictions(dataset, episodes, pred)


def test_fss1000_is_counted_at_hsnets_size_and_folders_at_their_own(tmp_path: Path) -> None:
    for name in fss_split_classes("test"):
        for n in (1, 2):
            image(tmp_path / "fss" / name / f"{n}.jpg")
            gray(tmp_path / "fss" / name / f"{n}.png", square())
    fss = meter_for(Fss1000Dataset(tmp_path / "fss", "test"))
    assert isinstance(fss, HsnetMeter) and fss.eval_size == (400, 400)
    image(tmp_path / "folder/images/a/1.jpg")
    gray(tmp_path / "folder/masks/a/1.png", square())
    folder = meter_for(FolderDataset(tmp_path / "folder"))
    assert isinstance(folder, HsnetMeter) and folder.eval_size is None
    assert isinstance(meter_for(PerSegDataset(perseg_tree(tmp_path / "perseg"))), PersamMeter)
