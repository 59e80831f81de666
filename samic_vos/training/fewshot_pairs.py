"""Episodic training pairs from a few-shot image dataset (FSS-1000, PerSeg, folders, SAMBOX,
PASCAL-5i and COCO-20i folds, Kvasir-SEG, NWPU VHR-10, LabelMe: the training side that
:func:`samic_vos.data.fewshot_readers.open_training_set` opens).

For every class: a reproducible share of its labelled images is chosen
(:attr:`FewShotPairConfig.train_fraction`, the paper's 20% of each class's training images), and
every ordered pair of two different chosen images of the same size is a
:class:`~samic_vos.training.training_pairs.TrainingPair` (reference → target), with the points of
:func:`samic_vos.prompts.mask_points.interior_points` on each mask, as the video path derives them.
Images whose mask gives no point (empty) are left out and counted in the log.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from samic_vos.data.fewshot_sets import (
    FewShotDataset,
    FewShotItem,
    check_mask_size,
)
from samic_vos.data.fold_sets import FOLDS
from samic_vos.data.names import FSS_SPLITS
from samic_vos.prompts.mask_points import DEFAULT_MIN_AREA, interior_points
from samic_vos.runtime.config import require, require_choice
from samic_vos.runtime.errors import UserError
from samic_vos.training.training_pairs import DEFAULT_POINTS_PER_OBJECT, TrainingPair

log = logging.getLogger("samic_vos.training.fewshot_pairs")

FEWSHOT_OBJECT_ID = 1  # a few-shot class is one object: id 1 of its (binary) mask


@dataclass
class FewShotPairConfig:
    """Which images of each class make training pairs (key ``fewshot:`` of the train job).

    ``split`` is read for FSS-1000 only, ``fold`` for PASCAL-5i and COCO-20i only (the other
    datasets train on their train list, or on every class).
    """

    train_fraction: float = 0.2  # the paper: 20% of each class's training images
    seed: int = 0  # which images a fraction chooses
    min_images: int = 2  # the fewest images chosen per class (a pair needs two; paper silent)
    split: str = "train"  # FSS-1000: the split whose classes train (HSNet's 520 classes)
    fold: int = 0  # PASCAL-5i, COCO-20i: the fold held out (trains on the other three folds)
    # References per target image (paper silent): null, every ordered pair of chosen images
    # (FSS-1000: 2 per class); N, N references drawn per target, so that a class of n chosen
    # images gives n * N pairs instead of n * (n - 1) (PASCAL-5i's person: 677 chosen images).
    references_per_target: int | None = None

    def __post_init__(self) -> None:
        ok = 0 < self.train_fraction <= 1
        require(ok, "train_fraction", "a fraction in (0, 1]", self.train_fraction)
        require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        require(self.min_images >= 2, "min_images", "an integer >= 2", self.min_images)
        require_choice("split", self.split, FSS_SPLITS)
        require_choice("fold", self.fold, FOLDS)
        cap = self.references_per_target
        require(cap is None or cap >= 1, "references_per_target", "null or >= 1", cap)


def chosen_items(
    class_name: str, items: list[FewShotItem], config: FewShotPairConfig
) -> list[FewShotItem]:
    """The images of ``class_name`` a training uses, in the class's order.

    ``ceil(train_fraction · n)`` of its ``n`` images (at least ``min_images``, at most ``n``),
    drawn by a generator seeded with ``config.seed`` and the class name, so a class's choice
    does not depend on the other classes.
    """
    count = min(len(items), max(config.min_images, math.ceil(config.train_fraction * len(items))))
    picked = random.Random(f"{config.seed}/{class_name}").sample(range(len(items)), count)
    return [items[k] for k in sorted(picked)]


def _capped(
    class_name: str,
    labelled: list[tuple[FewShotItem, np.ndarray, tuple[int, int]]],
    config: FewShotPairConfig,
) -> set[tuple[int, int]] | None:
    """``(reference, target)`` positions in ``labelled`` kept under
    ``config.references_per_target`` (``None``: no cap, every pair): per target, that many of
    the same-size others, drawn by a generator seeded with the seed, class and target name."""
    cap = config.references_per_target
    if cap is None:
        return None
    allowed: set[tuple[int, int]] = set()
    for t, (target, _, size) in enumerate(labelled):
        others = [r for r, (_, _, s) in enumerate(labelled) if r != t and s == size]
        draw = random.Random(f"{config.seed}/{class_name}/{target.image.name}")
        allowed |= {(r, t) for r in draw.sample(others, min(cap, len(others)))}
    return allowed


def pairs_from_fewshot(
    dataset: FewShotDataset,
    config: FewShotPairConfig | None = None,
    points_per_object: int = DEFAULT_POINTS_PER_OBJECT,
    min_area: int = DEFAULT_MIN_AREA,
) -> list[TrainingPair]:
    """Training pairs of every class of ``dataset``: ordered pairs of different chosen images.

    ``sequence`` of a pair is its class name, ``object_id`` is :data:`FEWSHOT_OBJECT_ID`;
    points are up to ``points_per_object`` interior points (x, y) of each mask. Pairs are in
    class order, then reference, then target (the class's image order). Two images of
    different sizes make no pair (the trainer crops both frames alike). Raises
    :class:`UserError` for a mask whose size is not its image's, or when no pair is found.
    """
    config = config or FewShotPairConfig()
    pairs: list[TrainingPair] = []
    empty = 0
    for class_name in dataset.classes:
        labelled: list[tuple[FewShotItem, np.ndarray, tuple[int, int]]] = []
        for item in chosen_items(class_name, dataset.items(class_name), config):
            mask, size = dataset.read_mask(item), dataset.image_size(item)
            check_mask_size(item, mask.shape, size)
            points = interior_points(mask, points_per_object, min_area)
            if len(points) == 0:
                empty += 1
                continue
            labelled.append((item, points, size))
        allowed = _capped(class_name, labelled, config)
        for (r, (ref, ref_points, size)), (t, (tgt, tgt_points, tgt_size)) in permutations(
            enumerate(labelled), 2
        ):
            if size == tgt_size and (allowed is None or (r, t) in allowed):
                pairs.append(
                    TrainingPair(
                        sequence=class_name,
                        object_id=FEWSHOT_OBJECT_ID,
                        ref_frame=ref.image,
                        tgt_frame=tgt.image,
                        ref_points=ref_points,
                        tgt_points=tgt_points,
                        image_size=size,
                        upright=dataset.upright,
                    )
                )
    if empty:
        log.info("%d chosen image(s) with an empty mask left out", empty)
    if not pairs:
        raise UserError(
            f"{dataset.root}: no training pair (two chosen images of one class with the same "
            "size and non-empty masks); raise `train_fraction` or add labelled images"
        )
    log.info("%d training pairs from %d classes", len(pairs), len(dataset.classes))
    return pairs
