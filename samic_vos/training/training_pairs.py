"""Training pairs: (reference frame with points → target frame with points), per object.

SAMIC learns to move point prompts from a reference image to a target image. A
:class:`TrainingPair` holds one such example; the trainer draws the heat maps from its points.

- DAVIS (:func:`pairs_from_davis`): for every sequence, the dynamic frames ``t`` are picked by
  optical flow (:mod:`samic_vos.training.optical_flow`, motion scores from the ground-truth masks,
  so camera motion is discounted); each object present in frames ``t−1`` and ``t`` gives the pair
  ``t−1 → t``, with points derived from the ground-truth masks by the deterministic
  :func:`samic_vos.prompts.mask_points.interior_points` (one point per connected component, at the
  pixel farthest from its boundary, largest components first).
- SAMBOX folders (:func:`pairs_from_sambox`): the points users clicked
  (:mod:`samic_vos.data.sambox_format`); see ``docs/sambox_format.md`` for the two pairings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from samic_vos.data.sambox_format import SamboxAnnotation, find_annotations, read_annotation
from samic_vos.prompts.mask_points import DEFAULT_MIN_AREA, MAX_POINTS_PER_OBJECT, interior_points
from samic_vos.runtime.console import bar
from samic_vos.runtime.errors import UserError
from samic_vos.training.optical_flow import FlowConfig, cached_motion_scores, select_dynamic_frames

if TYPE_CHECKING:
    from samic_vos.data.davis import DavisDataset

# The most ground-truth points per object and frame: the peak detector's cap, so targets
# never hold more points than the network's output can.
DEFAULT_POINTS_PER_OBJECT = MAX_POINTS_PER_OBJECT


@dataclass(frozen=True, eq=False)
class TrainingPair:
    """One training example: ``ref_points`` on ``ref_frame`` → ``tgt_points`` on ``tgt_frame``.

    Points are ``float32`` ``(N, 2)`` / ``(M, 2)`` arrays, ``N, M >= 1``, of ``(x, y)`` pixel
    coordinates of the original images (x = column, y = row, pixel centres at integers).
    Both frames have ``image_size`` = ``(H, W)``. ``sequence`` names the video (DAVIS
    sequence, SAMBOX folder) or, for SAMBOX label pairing, the label; ``object_id`` is the
    object's id in the target frame. ``upright``: the frames are read with their EXIF
    orientation applied (SAMBOX's images, annotated as shown; see
    :func:`~samic_vos.data.davis.read_image`).
    """

    sequence: str
    object_id: int
    ref_frame: Path
    tgt_frame: Path
    ref_points: np.ndarray
    tgt_points: np.ndarray
    image_size: tuple[int, int]
    upright: bool = False


def chosen_sequences(available: Sequence[str], wanted: Iterable[str] | None) -> list[str]:
    """The ``wanted`` sequences (``None``: all) in ``available``'s order; UserError naming
    one that is not available."""
    if wanted is None:
        return list(available)
    wanted = list(wanted)
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise UserError(
            f"sequence '{unknown[0]}' is not in the dataset split "
            f"(available: {', '.join(available)})"
        )
    return [s for s in available if s in wanted]


def pairs_from_davis(
    dataset: DavisDataset,
    flow_config: FlowConfig | None = None,
    points_per_object: int = DEFAULT_POINTS_PER_OBJECT,
    min_area: int = DEFAULT_MIN_AREA,
    cache_dir: str | os.PathLike | None = None,
    sequences: Iterable[str] | None = None,
    progress: bool = False,
) -> list[TrainingPair]:
    """Pairs ``t−1 → t`` at the dynamic frames of every sequence (or of ``sequences``).

    For each sequence: motion scores with the ground-truth masks (all objects together form
    the moving region; cached in ``cache_dir``, see
    :func:`~samic_vos.training.optical_flow.cached_motion_scores`), ``flow_config.top_k`` frames at
    least ``flow_config.min_gap`` apart, then one pair per object id present with at least
    ``min_area`` pixels in both ``t−1`` and ``t`` (smaller or absent objects are skipped),
    holding up to ``points_per_object`` interior points per frame. Every frame of a sequence
    must be annotated (DAVIS train splits are). Order: sequence, frame, object id.
    """
    config = flow_config or FlowConfig()
    pairs: list[TrainingPair] = []
    names = chosen_sequences(list(dataset.sequences), sequences)
    for seq in bar(names, desc="dynamic frames", unit="seq", disable=not progress):
        frames = list(dataset.frame_paths(seq))
        annotations = list(dataset.annotation_paths(seq))
        if len(annotations) != len(frames):
            raise UserError(
                f"sequence '{seq}' has {len(frames)} frames but {len(annotations)} annotations; "
                "training needs every frame annotated (use a train split)"
            )
        masks = (dataset.read_annotation(seq, t) for t in range(len(frames)))
        scores = cached_motion_scores(
            Path(frames[0]).parent, frames, masks, config, cache_dir, Path(annotations[0]).parent
        )
        for t in select_dynamic_frames(scores, config.top_k, config.min_gap):
            prev_ids, ids = dataset.read_annotation(seq, t - 1), dataset.read_annotation(seq, t)
            for object_id in range(1, dataset.num_objects(seq) + 1):
                prev_mask, mask = prev_ids == object_id, ids == object_id
                if prev_mask.sum() < min_area or mask.sum() < min_area:
                    continue
                pairs.append(
                    TrainingPair(
                        sequence=seq,
                        object_id=object_id,
                        ref_frame=Path(frames[t - 1]),
                        tgt_frame=Path(frames[t]),
                        ref_points=interior_points(prev_mask, points_per_object, min_area),
                        tgt_points=interior_points(mask, points_per_object, min_area),
                        image_size=(int(ids.shape[0]), int(ids.shape[1])),
                    )
                )
    return pairs


def _sambox_pair(
    sequence: str,
    object_id: int,
    ref: SamboxAnnotation,
    tgt: SamboxAnnotation,
    ref_points: np.ndarray,
    tgt_points: np.ndarray,
) -> TrainingPair:
    return TrainingPair(
        sequence=sequence,
        object_id=object_id,
        ref_frame=ref.image_path(),
        tgt_frame=tgt.image_path(),
        ref_points=np.asarray(ref_points, dtype=np.float32).reshape(-1, 2),
        tgt_points=np.asarray(tgt_points, dtype=np.float32).reshape(-1, 2),
        image_size=tgt.image_size,
        upright=True,  # SAMBOX shows and annotates images upright
    )


def _sequence_pairs(root: Path, annotations: list[SamboxAnnotation]) -> list[TrainingPair]:
    """Consecutive annotated frames of each folder, objects matched by id."""
    pairs: list[TrainingPair] = []
    for ref, tgt in pairwise(annotations):
        if ref.path.parent != tgt.path.parent:
            continue  # the two frames belong to different sequences
        if ref.image_size != tgt.image_size:
            raise UserError(
                f"{tgt.path}: 'image_size' {list(tgt.image_size)} differs from the previous "
                f"frame's {list(ref.image_size)} ({ref.path}); frames of a sequence share a size"
            )
        sequence = tgt.path.parent.relative_to(root.parent).as_posix()
        for obj in tgt.objects:
            previous = ref.object_by_id(obj.id)
            # A version-2 object prompted with boxes only has no point to learn from.
            if previous is not None and len(previous.points) and len(obj.points):
                pairs.append(_sambox_pair(sequence, obj.id, ref, tgt, previous.points, obj.points))
    return pairs


def _label_pairs(annotations: list[SamboxAnnotation]) -> list[TrainingPair]:
    """Every ordered pair of different same-size images sharing a label."""
    by_label: dict[str, list[tuple[SamboxAnnotation, int, np.ndarray]]] = {}
    for annotation in annotations:
        labelled: dict[str, list] = {}
        for obj in annotation.objects:
            if obj.label is not None and len(obj.points):
                labelled.setdefault(obj.label, []).append(obj)
        for label, objects in labelled.items():
            # All instances of the label in one image form one target (class-level prompts).
            points = np.concatenate([o.points for o in objects])
            by_label.setdefault(label, []).append((annotation, objects[0].id, points))
    pairs: list[TrainingPair] = []
    for label in sorted(by_label):
        entries = by_label[label]
        for ref, _, ref_points in entries:
            for tgt, object_id, tgt_points in entries:
                if tgt is not ref and tgt.image_size == ref.image_size:
                    pairs.append(_sambox_pair(label, object_id, ref, tgt, ref_points, tgt_points))
    return pairs


def pairs_from_sambox(
    folder: str | os.PathLike, pairing: Literal["sequence", "label"] = "sequence"
) -> list[TrainingPair]:
    """Pairs from the SAMBOX annotations under ``folder`` with their saved positive points.

    ``pairing="sequence"``: each folder is a video; consecutive annotated frames (natural
    file-name order, unannotated frames skipped) give one pair per object id present in both.
    ``pairing="label"``: for unordered images; all objects of one label in an image form one
    point set, and every ordered pair of two different images of the same size sharing that
    label is a pair (``sequence`` is the label; sizes must match because the trainer crops
    both frames alike). Raises :class:`UserError` when no annotation or no pair is found.
    """
    root = Path(folder)
    paths = find_annotations(root)
    if not paths:
        raise UserError(
            f"{root}: no SAMBOX annotations (*.sambox.json) found; annotate images with SAMBOX"
        )
    annotations = [read_annotation(p) for p in paths]
    if pairing == "sequence":
        pairs = _sequence_pairs(root, annotations)
    elif pairing == "label":
        pairs = _label_pairs(annotations)
    else:
        raise UserError(f"SAMBOX pairing '{pairing}' is unknown; use 'sequence' or 'label'")
    if not pairs:
        raise UserError(
            f"{root}: {len(paths)} SAMBOX annotations but no training pair with pairing "
            f"'{pairing}' (sequence: an object id in two consecutive frames of one folder; "
            "label: one label in two images of the same size)"
        )
    return pairs
