"""Score predicted few-shot masks saved on disk against a dataset, per its test protocol.

Predictions live in ``PRED/<class>/<query name>.png`` (:func:`prediction_path`), one per episode
(every query appears once in both protocols); any mask PNG that
:func:`samic_vos.data.mask_io.read_mask` reads, every non-zero id (but void 255) being the class.
FSS-1000, plain folders and SAMBOX folders are scored as HSNet scores FSS-1000 (mIoU and
FB-IoU over the dataset's classes; FSS-1000 at HSNet's 400 × 400), PerSeg as PerSAM scores it
(mIoU); see :mod:`samic_vos.eval.fewshot_metrics`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from samic_vos.data.fewshot_episodes import Episode
from samic_vos.data.fewshot_sets import FewShotDataset
from samic_vos.data.mask_io import VOID_ID, read_mask
from samic_vos.eval.fewshot_metrics import HSNET_EVAL_SIZE, HsnetMeter, PersamMeter
from samic_vos.runtime.errors import UserError


def prediction_path(pred_dir: str | os.PathLike[str], episode: Episode) -> Path:
    """Where the prediction of ``episode`` is saved: ``pred_dir/<class>/<query name>.png``."""
    return Path(pred_dir) / episode.class_name / f"{episode.query.name}.png"


def meter_for(dataset: FewShotDataset) -> HsnetMeter | PersamMeter:
    """The reference scoring of ``dataset``: PerSAM's for PerSeg, HSNet's for the others
    (FSS-1000 counted at HSNet's 400 × 400, the others at their own size)."""
    if dataset.kind == "perseg":
        return PersamMeter()
    size = HSNET_EVAL_SIZE if dataset.kind == "fss1000" else None
    return HsnetMeter(dataset.classes, eval_size=size)


def score_predictions(
    dataset: FewShotDataset, episodes: Iterable[Episode], pred_dir: str | os.PathLike[str]
) -> dict:
    """Scores of the predictions in ``pred_dir`` for ``episodes`` of ``dataset``.

    Returns ``{"global": {"mIoU": …[, "FB-IoU": …]}, "per_class": {"<class>": IoU, …}}``
    (percentages). Raises :class:`UserError` naming the first missing prediction or one whose
    size is not its query image's.
    """
    meter = meter_for(dataset)
    for episode in episodes:
        path = prediction_path(pred_dir, episode)
        if not path.is_file():
            raise UserError(
                f"{path}: prediction of query {episode.query.image} not found; "
                "predict every episode before scoring"
            )
        ids, truth = read_mask(path), dataset.read_mask(episode.query)
        if ids.shape != truth.shape:
            raise UserError(
                f"{path}: prediction is {ids.shape[1]}x{ids.shape[0]} but the ground truth of "
                f"{episode.query.image} is {truth.shape[1]}x{truth.shape[0]}; predict at the "
                "query's size"
            )
        meter.update(episode.class_name, (ids > 0) & (ids != VOID_ID), truth)
    return meter.summary()
