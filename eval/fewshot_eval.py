"""Score predicted few-shot masks saved on disk against a dataset, per its test protocol.

Predictions live in ``PRED/<class>/<episode name>.png`` (:func:`prediction_path`), one per
episode: the query's name where every query is one episode (FSS-1000, folders, PerSeg), the
episode's number and the query's name where queries come back (PASCAL-5i, COCO-20i:
``0042_2008_000123.png``); any mask PNG that :func:`samic_vos.data.mask_io.read_mask` reads,
every non-zero id (but void 255) being the class. PASCAL-5i, COCO-20i, FSS-1000, plain folders
and SAMBOX folders are scored as HSNet scores them (mIoU and FB-IoU over the dataset's classes,
PASCAL-5i's 255 band left out), PerSeg as PerSAM scores it (mIoU); see
:mod:`samic_vos.eval.fewshot_metrics`. The size at which HSNet's areas are counted is
:func:`eval_size` of a setting (:data:`EVAL_SIZES`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from samic_vos.data.fewshot_episodes import Episode
from samic_vos.data.fewshot_sets import FewShotDataset
from samic_vos.data.mask_io import VOID_ID, read_mask
from samic_vos.eval.fewshot_metrics import HSNET_EVAL_SIZE, HsnetMeter, PersamMeter
from samic_vos.runtime.errors import UserError, size_text

EVAL_SIZES = ("auto", "original")  # or an integer N: N x N pixels
HSNET_SIZED = ("fss1000", "pascal5i", "coco20i")  # HSNet counts these at 400 x 400


def prediction_path(pred_dir: str | os.PathLike[str], episode: Episode) -> Path:
    """Where the prediction of ``episode`` is saved: ``pred_dir/<class>/<episode name>.png``."""
    return Path(pred_dir) / episode.class_name / f"{episode.name}.png"


def eval_size(kind: str, setting: int | str = "auto") -> tuple[int, int] | None:
    """``(h, w)`` at which HSNet's areas of dataset ``kind`` are counted, ``None`` at the masks'
    own size. ``setting``: ``"auto"`` (HSNet's 400 × 400 for FSS-1000, PASCAL-5i and COCO-20i,
    the own size for folders and PerSeg), ``"original"``, or ``N`` (``N × N``).

    Raises :class:`UserError` for another setting, and for a resize of PerSeg (PerSAM counts
    at the masks' size).
    """
    if setting == "auto":
        return HSNET_EVAL_SIZE if kind in HSNET_SIZED else None
    if setting == "original":
        return None
    if not isinstance(setting, int) or isinstance(setting, bool) or setting < 1:
        raise UserError(f"evaluation size {setting!r}: use auto, original or an integer >= 1")
    if kind == "perseg":
        raise UserError("PerSeg is scored at the masks' own size (PerSAM): use auto or original")
    return setting, setting


def meter_for(dataset: FewShotDataset, size: int | str = "auto") -> HsnetMeter | PersamMeter:
    """The reference scoring of ``dataset``: PerSAM's for PerSeg, HSNet's for the others,
    counted at :func:`eval_size` of ``size``."""
    counted = eval_size(dataset.kind, size)
    if dataset.kind == "perseg":
        return PersamMeter()
    return HsnetMeter(dataset.classes, eval_size=counted)


def score_predictions(
    dataset: FewShotDataset,
    episodes: Iterable[Episode],
    pred_dir: str | os.PathLike[str],
    size: int | str = "auto",
) -> dict:
    """Scores of the predictions in ``pred_dir`` for ``episodes`` of ``dataset``, HSNet's areas
    counted at :func:`eval_size` of ``size``.

    Returns ``{"global": {"mIoU": …[, "FB-IoU": …]}, "per_class": {"<class>": IoU, …}}``
    (percentages; HSNet's scoring adds ``"sums"``, see :meth:`HsnetMeter.sums`). Raises
    :class:`UserError` naming the first missing prediction or one whose size is not its query
    image's.
    """
    meter = meter_for(dataset, size)
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
                f"{path}: prediction is {size_text(ids.shape)} but the ground truth of "
                f"{episode.query.image} is {size_text(truth.shape)}; predict at the "
                "query's size"
            )
        pred = (ids > 0) & (ids != VOID_ID)
        if isinstance(meter, HsnetMeter):
            meter.update(episode.class_name, pred, truth, dataset.read_void(episode.query))
        else:
            meter.update(episode.class_name, pred, truth)
    return meter.summary()
