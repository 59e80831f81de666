"""The prompter interface: what turns an object's reference state and a new frame into SAM prompts.

The causal tracker (:class:`samic_vos.tracker.CausalTracker`) owns a video's state (which
objects exist, the frame index) and drives one :class:`Prompter`, which keeps, per object, its
reference state and makes each frame's prompts (positive and negative points, a box, a mask
input, as the method uses them) and their SAM segmentation. The DAVIS benchmark and the image
path call the same interface. Prompters (:data:`PROMPTERS`):

- ``samic``: SAMIC's heat map from the object's reference frame(s) → peaks → SAM
  (:mod:`samic_vos.samic_prompter`);
- ``previous-mask``: interior points of the object's mask on the last frame where it was found;
- ``persam``: PerSAM's training-free recipe (:mod:`samic_vos.baseline_prompters`).

Per frame the tracker calls :meth:`Prompter.new_frame` (after SAM's embedding of the frame is
set), :meth:`Prompter.track` for the objects it follows, :meth:`Prompter.given` for each object
given by a mask on this frame, and :meth:`Prompter.end_frame` with the frame's id map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from samic_vos.segmenter import SamSegmenter, Segmentation

if TYPE_CHECKING:
    from samic_vos.samic_net import SamicNet
    from samic_vos.tracker import TrackerConfig

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


def build_prompter(
    name: str,
    segmenter: SamSegmenter,
    config: TrackerConfig,
    net: SamicNet | None = None,
    device: torch.device | str = "cpu",
) -> Prompter:
    """The prompter ``name`` (one of :data:`PROMPTERS`); ``samic`` needs ``net``."""
    from samic_vos.baseline_prompters import PerSamPrompter, PreviousMaskPrompter
    from samic_vos.samic_prompter import SamicPrompter

    if name == "samic":
        if net is None:
            raise ValueError("the samic prompter needs a SAMIC network")
        return SamicPrompter(net, segmenter, config, device, segmenter.threads)
    if name == "previous-mask":
        return PreviousMaskPrompter(segmenter, config.peaks.max_points)
    if name == "persam":
        return PerSamPrompter(segmenter)
    raise ValueError(f"unknown prompter {name!r}: use one of {', '.join(PROMPTERS)}")


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
