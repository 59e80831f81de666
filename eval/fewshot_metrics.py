"""Few-shot segmentation scores, defined exactly as the reference toolkits define them.

Masks are ``bool`` arrays of shape ``(H, W)`` (``True`` = the class), prediction and ground
truth of the same size. Scores are percentages (0..100).

**FSS-1000, as HSNet** (``juhongm999/hsnet``: ``common/evaluation.py``
``Evaluator.classify_prediction`` and ``common/logger.py`` ``AverageMeter.compute_iou``): every
episode gives, for the background (0) and the foreground (1), the intersection
``|pred == c and gt == c|`` and the union ``|pred == c| + |gt == c| − intersection``; both are
summed per class over its episodes. Then, over the classes of the split (a class without
episodes counts, with IoU 0, as HSNet's ``class_ids_interest`` does):

- **mIoU** = mean over classes of ``ΣI_fg / max(ΣU_fg, 1)`` × 100;
- **FB-IoU** = mean over {background, foreground} of ``Σ_classes ΣI / Σ_classes ΣU`` × 100 (the
  areas of all classes are summed first, then divided: not a mean of per-class ratios).

**PASCAL-5i** adds HSNet's void (``Evaluator.classify_prediction`` after ``extract_ignore_idx``):
the ground truth's 255 band, found after the same nearest resize as the mask, is left out of
both intersections and of both areas (prediction and ground truth) of every union; elsewhere
a pixel of another class is background. COCO-20i and FSS-1000 have no void.

HSNet counts FSS-1000 pixels at 400 × 400 (``test.py``: ``img_size=400``; ``data/fss.py``
resizes the 224 × 224 query mask with ``F.interpolate(mode='nearest')`` and has no
original-size option), and PASCAL-5i and COCO-20i at 400 × 400 by default (``test.py``:
``img_size=400``; ``--use_original_imgsize`` counts them at the image's size):
:data:`HSNET_EVAL_SIZE`, given as ``eval_size`` to :class:`HsnetMeter`, resizes ground truth,
void and prediction alike with the same nearest rule (:func:`nearest_resize`).

A meter's per-class sums (:meth:`HsnetMeter.sums`) can be saved and added to another meter's
(:meth:`HsnetMeter.add_sums`): runs of disjoint classes combine into the scores of their union.

**PerSeg, as PerSAM** (``ZrrSkywalker/Personalize-SAM``: ``eval_miou.py``): per class (object),
the foreground intersections and unions of its targets are summed; its IoU is
``ΣI / (ΣU + 1e-10)``; **mIoU** = mean over classes × 100.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERSAM_EPS = 1e-10  # eval_miou.py: iou_class = intersection.sum / (union.sum + 1e-10)
HSNET_EVAL_SIZE = (400, 400)  # (H, W) at which HSNet counts FSS-1000 areas


def nearest_resize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``mask`` (``(H, W)``) resized to ``size`` = ``(h, w)`` as PyTorch's nearest mode does.

    Output pixel ``i`` takes input pixel ``min(floor(i · s), n − 1)`` along each axis, with
    ``s = n / size`` computed in float32, as ``F.interpolate(mode='nearest')`` computes it.
    """

    def source(n_in: int, n_out: int) -> np.ndarray:
        scale = np.float32(n_in) / np.float32(n_out)
        index = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
        return np.minimum(index, n_in - 1)

    mask = np.asarray(mask)
    return mask[np.ix_(source(mask.shape[0], size[0]), source(mask.shape[1], size[1]))]


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"masks must be (H, W) of one size, got {pred.shape} and {gt.shape}")
    return pred, gt


def foreground_areas(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """``(intersection, union)`` pixel counts of the foreground of one prediction."""
    pred, gt = _check(pred, gt)
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def hsnet_areas(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """HSNet's areas of one episode: ``int64`` ``(2, 2)``, ``[[I_bg, I_fg], [U_bg, U_fg]]``.

    ``void``: ``bool (H, W)`` pixels counted nowhere (PASCAL-5i's 255 band), or ``None``.
    """
    pred, gt = _check(pred, gt)
    if void is not None:
        keep = ~_check(void, gt)[0]
        pred, gt, back_pred, back_gt = pred & keep, gt & keep, ~pred & keep, ~gt & keep
    else:
        back_pred, back_gt = ~pred, ~gt
    inter_fg, union_fg = foreground_areas(pred, gt)
    inter_bg, union_bg = foreground_areas(back_pred, back_gt)
    return np.array([[inter_bg, inter_fg], [union_bg, union_fg]], dtype=np.int64)


def _percent(numerator: float, denominator: float) -> float:
    """``100 · numerator / denominator``; NaN for ``0 / 0`` (HSNet's torch division gives NaN)."""
    return float("nan") if denominator == 0 else 100.0 * numerator / denominator


class HsnetMeter:
    """HSNet's FSS-1000 scores over episodes of the split's ``classes``.

    ``update`` adds one episode; ``miou``/``fb_iou``/``per_class`` read the sums at any time.
    ``eval_size``: ``(h, w)`` at which pixels are counted (FSS-1000 as HSNet:
    :data:`HSNET_EVAL_SIZE`); ``None`` counts them at the masks' own size.
    """

    def __init__(self, classes: Sequence[str], eval_size: tuple[int, int] | None = None) -> None:
        if not classes or len(set(classes)) != len(classes):
            raise ValueError("classes must be a non-empty list of distinct names")
        self.classes = list(classes)
        self.eval_size = eval_size
        self._index = {name: k for k, name in enumerate(self.classes)}
        # [I or U][bg, fg][class]: HSNet's intersection_buf / union_buf.
        self._areas = np.zeros((2, 2, len(self.classes)), dtype=np.int64)

    def update(
        self, class_name: str, pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None
    ) -> None:
        """Add the episode of ``class_name``: prediction, ground truth and void (pixels not
        counted, or ``None``), ``bool`` ``(H, W)`` each, resized to ``eval_size`` alike."""
        if class_name not in self._index:
            raise ValueError(f"class '{class_name}' is not one of the meter's classes")
        pred, gt = _check(pred, gt)
        if self.eval_size is not None:
            pred, gt = nearest_resize(pred, self.eval_size), nearest_resize(gt, self.eval_size)
            void = None if void is None else nearest_resize(void, self.eval_size)
        self._areas[:, :, self._index[class_name]] += hsnet_areas(pred, gt, void)

    def sums(self) -> dict[str, dict[str, list[int]]]:
        """Per class, its summed areas: ``{"intersection": [bg, fg], "union": [bg, fg]}``."""
        return {
            name: {
                "intersection": self._areas[0, :, k].tolist(),
                "union": self._areas[1, :, k].tolist(),
            }
            for k, name in enumerate(self.classes)
        }

    def add_sums(self, sums: dict[str, dict[str, list[int]]]) -> None:
        """Add saved :meth:`sums` (of some or all of the meter's classes) to the meter's."""
        for name, areas in sums.items():
            if name not in self._index:
                raise ValueError(f"class '{name}' is not one of the meter's classes")
            column = self._index[name]
            self._areas[0, :, column] += np.asarray(areas["intersection"], dtype=np.int64)
            self._areas[1, :, column] += np.asarray(areas["union"], dtype=np.int64)

    def per_class(self) -> dict[str, float]:
        """Foreground IoU of each class, ``ΣI / max(ΣU, 1)`` × 100."""
        inter, union = self._areas[0, 1], self._areas[1, 1]
        iou = 100.0 * inter / np.maximum(union, 1)
        return {name: float(iou[k]) for k, name in enumerate(self.classes)}

    def miou(self) -> float:
        """Mean over the classes of :meth:`per_class`."""
        return float(np.mean(list(self.per_class().values())))

    def fb_iou(self) -> float:
        """Mean of the background and foreground IoU of the areas summed over all classes."""
        inter, union = self._areas[0].sum(axis=1), self._areas[1].sum(axis=1)
        return (_percent(inter[0], union[0]) + _percent(inter[1], union[1])) / 2

    def summary(self) -> dict:
        """``{"global": {"mIoU": …, "FB-IoU": …}, "per_class": {"<class>": IoU, …},
        "sums": {"<class>": {"intersection": [bg, fg], "union": [bg, fg]}, …}}``."""
        return {
            "global": {"mIoU": self.miou(), "FB-IoU": self.fb_iou()},
            "per_class": self.per_class(),
            "sums": self.sums(),
        }


class PersamMeter:
    """PerSAM's PerSeg scores: per class ``ΣI / (ΣU + 1e-10)``, mIoU over classes (× 100).

    Classes enter in the order of their first ``update``; only updated classes are scored
    (PerSAM scores every object of ``Annotations/``, each with its targets).
    """

    def __init__(self) -> None:
        self._sums: dict[str, list[int]] = {}

    def update(self, class_name: str, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one target of ``class_name``: prediction and ground truth, ``bool`` ``(H, W)``."""
        inter, union = foreground_areas(pred, gt)
        sums = self._sums.setdefault(class_name, [0, 0])
        sums[0] += inter
        sums[1] += union

    def per_class(self) -> dict[str, float]:
        """IoU of each class, ``ΣI / (ΣU + 1e-10)`` × 100."""
        return {name: 100.0 * i / (u + PERSAM_EPS) for name, (i, u) in self._sums.items()}

    def miou(self) -> float:
        """Mean over the classes of :meth:`per_class` (NaN before any update)."""
        values = list(self.per_class().values())
        return float(np.mean(values)) if values else float("nan")

    def summary(self) -> dict:
        """``{"global": {"mIoU": …}, "per_class": {"<class>": IoU, …}}``."""
        return {"global": {"mIoU": self.miou()}, "per_class": self.per_class()}


def hsnet_vote(masks: Sequence[np.ndarray]) -> np.ndarray:
    """HSNet's K-shot prediction from K one-shot masks (``model/hsnet.py``
    ``predict_mask_nshot``): a pixel's votes ``v`` (how many masks hold it), divided by the
    image's highest vote ``m`` (at least 1), kept where ``v / m >= 0.5``.

    ``masks``: K ``bool (H, W)`` masks of one size; returns ``bool (H, W)``. One mask is itself;
    the threshold is relative to the highest vote, not to K (with votes of at most 2 of 5, a
    pixel of one vote is kept).
    """
    votes = np.sum([np.asarray(mask, dtype=bool) for mask in masks], axis=0, dtype=np.int64)
    highest = max(int(votes.max(initial=0)), 1)
    return 2 * votes >= highest  # v / m >= 0.5, exactly, in integers
