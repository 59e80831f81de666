"""Folds side by side: a PASCAL-5i or COCO-20i row of the paper's Table 1 from scored runs.

Each fold is its own ``bench fewshot`` run (its network trained on the other three folds), and
its ``scores.json`` keeps, per class, HSNet's summed areas (``sums``: intersection and union of
background and foreground, :meth:`~samic_vos.eval.fewshot_metrics.HsnetMeter.sums`).
:func:`combine_folds` puts several such runs together: the runs of one fold (disjoint sets of
classes, e.g. ``--classes`` subsets) add their sums into the fold's meter, whose mIoU and FB-IoU
are HSNet's (``AverageMeter.compute_iou`` over the fold's classes); the row is each fold's scores
beside their mean over the folds, the figure HSNet and SAMIC report as "mean" (a mean of the
fold mIoUs, not an mIoU over 80 or 20 classes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from samic_vos.data.coco import coco_fold_classes
from samic_vos.data.fold_sets import FOLDS
from samic_vos.data.pascal import pascal_fold_classes
from samic_vos.eval.fewshot_metrics import HsnetMeter
from samic_vos.runtime.errors import UserError

FOLD_CLASSES = {"pascal5i": pascal_fold_classes, "coco20i": coco_fold_classes}
METRICS = ("mIoU", "FB-IoU")


def _setting(scores: Mapping[str, Any]) -> dict[str, Any]:
    """What must agree between runs to sit in one row: the configuration without the fold and
    the classes, and the size the areas were counted at."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in scores["config"].items()}
    selection = dict(config.get("dataset", {}))
    for key in ("fold", "classes"):
        selection.pop(key, None)
    config["dataset"] = selection
    return {"config": config, "eval_size": scores.get("eval_size")}


def combine_folds(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The folds of ``runs`` (``(name, scores.json content)`` each) and their mean.

    Returns ``{"dataset", "shots", "eval_size", "folds": {"<F>": {"mIoU", "FB-IoU",
    "classes", "episodes"}}, "mean": {"mIoU", "FB-IoU"}, "complete"}`` (percentages; the folds
    in ascending order; ``complete``: all four folds, each with all its classes). Raises
    :class:`UserError` naming a run that is not a scored PASCAL-5i or COCO-20i fold, or that
    disagrees with the first run (dataset, shots, settings), or that scores a class another run
    of its fold scores.
    """
    if not runs:
        raise UserError("no run to combine")
    first_name, first = runs[0]
    folds: dict[int, HsnetMeter] = {}
    episodes: dict[int, int] = {}
    for name, scores in runs:
        if scores.get("dataset") not in FOLD_CLASSES or "sums" not in scores:
            raise UserError(f"{name}: not a scored PASCAL-5i or COCO-20i fold (scores.json)")
        if (scores["dataset"], scores["shots"]) != (first["dataset"], first["shots"]):
            raise UserError(
                f"{name}: {scores['dataset']} {scores['shots']}-shot, but {first_name} is "
                f"{first['dataset']} {first['shots']}-shot; combine runs of one benchmark"
            )
        if _setting(scores) != _setting(first):
            raise UserError(f"{name}: ran with other settings than {first_name}")
        fold = int(scores["fold"])
        meter = folds.get(fold)
        classes = list(scores["sums"])
        if meter is not None:
            shared = set(meter.classes) & set(classes)
            if shared:
                raise UserError(f"{name}: scores class '{min(shared)}' of fold {fold} again")
            classes = meter.classes + classes
        combined = HsnetMeter(classes)
        if meter is not None:
            combined.add_sums(meter.sums())
        combined.add_sums(scores["sums"])
        folds[fold] = combined
        episodes[fold] = episodes.get(fold, 0) + int(scores["episodes"])
    table = {
        str(fold): {
            "mIoU": folds[fold].miou(),
            "FB-IoU": folds[fold].fb_iou(),
            "classes": len(folds[fold].classes),
            "episodes": episodes[fold],
        }
        for fold in sorted(folds)
    }
    per_fold = len(FOLD_CLASSES[first["dataset"]](0))
    complete = sorted(folds) == list(FOLDS) and all(
        len(meter.classes) == per_fold for meter in folds.values()
    )
    return {
        "dataset": first["dataset"],
        "shots": first["shots"],
        "eval_size": first.get("eval_size"),
        "folds": table,
        "mean": {m: float(np.mean([row[m] for row in table.values()])) for m in METRICS},
        "complete": complete,
    }
