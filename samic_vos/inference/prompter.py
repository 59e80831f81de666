"""The prompter interface: what turns an object's reference state and a new frame into SAM prompts.

The causal tracker (:class:`samic_vos.inference.tracker.CausalTracker`) owns a video's state (which
objects exist, the frame index) and drives one :class:`Prompter`, which keeps, per object, its
reference state and makes each frame's prompts (positive and negative points, a box, a mask
input, as the method uses them) and their SAM segmentation. The DAVIS benchmark and the image
path call the same interface. Prompters (:data:`PROMPTERS`):

- ``samic``: SAMIC's heat map from the object's reference frame(s) → peaks → SAM
  (:mod:`samic_vos.inference.samic_prompter`);
- ``previous-mask``: interior points of the object's mask on the last frame where it was found;
- ``persam``: PerSAM's training-free recipe (:mod:`samic_vos.inference.baseline_prompters`).

Per frame the tracker calls :meth:`Prompter.new_frame` (after SAM's embedding of the frame is
set), :meth:`Prompter.track` for the objects it follows, :meth:`Prompter.given` for each object
given by a mask on this frame, and :meth:`Prompter.end_frame` with the frame's id map.

The settings every prompter and the tracker read (:class:`TrackerConfig`) live beside the
interface; :mod:`samic_vos.inference.prompters` builds a prompter by name, above the
implementations, so no implementation imports the tracker or the factory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from samic_vos.prompts.heatmaps import DEFAULT_SIGMA
from samic_vos.prompts.mask_points import MAX_POINTS_PER_OBJECT
from samic_vos.prompts.peaks import PeakConfig
from samic_vos.runtime.config import require
from samic_vos.sam.segmenter import Segmentation

PROMPTERS = ("samic", "previous-mask", "persam")


@dataclass
class Tracked:
    """One object's prompts on one frame and SAM's segmentation of them.

    Attributes:
        points: (N, 2) float32 positive (x, y) points in frame pixels.
        scores: per positive point, the prompter's score for it (heat value, similarity).
        segmentation: SAM's mask, logits and confidence for the object.
        reference: indexes of the points that became the object's reference (empty: the
            earlier reference was kept: the object was not found).
        negative: (M, 2) float32 negative points.
        box: (4,) float32 (x0, y0, x1, y1) box prompt of the last SAM call, or ``None``.
    """

    points: np.ndarray
    scores: list[float]
    segmentation: Segmentation
    reference: list[int]
    negative: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    box: np.ndarray | None = None


@dataclass
class RestoredFrame:
    """A finished frame, as a resumed run gives it back to a prompter.

    ``rgb``: the (H, W, 3) uint8 frame; ``ids``: its written (H, W) uint8 id map; ``points``:
    the object's recorded (N, 2) reference points on it.
    """

    rgb: np.ndarray
    ids: np.ndarray
    points: np.ndarray


@dataclass
class TrackerConfig:
    """Settings of the causal tracker (defaults; YAML only overrides)."""

    heat_sigma: float = DEFAULT_SIGMA  # σ of the prompt Gaussians, share of the heat-map side
    peaks: PeakConfig = field(default_factory=PeakConfig)
    # Frame 0 (where the object was given) as a second reference against drift; the two
    # heat maps are averaged, as K-shot references are.
    first_frame_reference: bool = True
    # Points SAMBOX-style prompting may add on a given mask.
    first_frame_max_points: int = MAX_POINTS_PER_OBJECT
    first_frame_target_iou: float = 0.9  # stop adding points once SAM reproduces the mask so well
    batch_size: int = 8  # references decoded by SAMIC at once (memory grows with it)

    def __post_init__(self) -> None:
        require(0 < self.heat_sigma <= 1, "heat_sigma", "in (0, 1]", self.heat_sigma)
        points = self.first_frame_max_points
        require(points >= 1, "first_frame_max_points", "an integer >= 1", points)
        iou = self.first_frame_target_iou
        require(0 < iou <= 1, "first_frame_target_iou", "in (0, 1]", iou)
        require(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)


class Prompter(Protocol):
    """Makes each frame's prompts for the objects of one video (see the module docstring)."""

    name: str

    def new_frame(self, rgb: np.ndarray) -> None:
        """The next frame, (H, W, 3) uint8 RGB; SAM's embedding of it is already set."""

    def track(self, obj_ids: list[int]) -> dict[int, Tracked]:
        """Prompts and SAM's segmentation of each followed object on the current frame."""

    def given(self, obj_id: int, mask: np.ndarray, points: np.ndarray) -> None:
        """Object ``obj_id`` (re)starts from its (H, W) bool ``mask`` on the current frame;
        ``points`` are the (N, 2) prompts that reproduce it with SAM."""

    def end_frame(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        """The current frame's final (H, W) uint8 id map (overlaps resolved), and what
        :meth:`track` returned; a prompter whose state follows the written masks sets each
        ``tracked[k].reference`` here."""

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        """Rebuild an object's state in a resumed run: the frame where it was last given, and
        the one where it was last found (``None``: the same frame)."""
