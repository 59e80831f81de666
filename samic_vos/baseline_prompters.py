"""Training-free prompters to set SAMIC beside: the previous mask's points, and PerSAM.

Both keep, per object, its mask on the last frame where it was found (the frame's written id
map, so a resumed run rebuilds it exactly from the PNG): an object that is lost keeps its last
good mask, for recovery.

- :class:`PreviousMaskPrompter` (``previous-mask``): the interior points of that mask, one per
  connected component (as the first frame's mask is prompted), one SAM prompt per component.
- :class:`PerSamPrompter` (``persam``): PerSAM's video recipe on stock ``segment_anything`` (no
  patched attention, no learned weights). The object's *target feature* comes from the SAM
  embedding of the frame where it was given: the features under the mask (resized and padded
  as SAM's input, then bilinearly resized to the embedding grid; positions > 0 kept), ½·max +
  ½·mean over those positions, L2-normalised. On frame t: cosine similarity with every
  embedding position, upsampled to the frame (×4 bilinear, then SAM's own postprocessing); the
  2 most similar pixels and the centre of the previous mask's box are positive points, the
  least similar pixel the negative one; then three SAM calls: (1) points + the previous box
  expanded by 10 px, one mask; (2) points + (1)'s low-res logits as ``mask_input``, SAM's three
  masks; (3) points + the box of (2)'s best mask + (2)'s logits, three masks; the best of (3)
  by SAM's predicted IoU is the object's mask. Objects are combined by the highest logit with 0
  as the background (the tracker's rule), i.e. argmax over a background channel.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from samic_vos.mask_points import DEFAULT_MIN_AREA, MAX_POINTS_PER_OBJECT, interior_points
from samic_vos.prompter import RestoredFrame, Tracked
from samic_vos.segmenter import SamSegmenter, Segmentation, group_points_by_component

BOX_MARGIN = 10  # PerSAM's video recipe expands the previous box by 10 px
PERSAM_TOP_POSITIVES = 2  # positive points from the similarity map


class _MaskMemory:
    """Each object's mask on the last frame where it was found (the written id map)."""

    def __init__(self) -> None:
        self.masks: dict[int, np.ndarray] = {}

    def update(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        """Keep each followed object's new mask where it is not empty; mark it found there."""
        for obj_id, result in tracked.items():
            mask = ids == obj_id
            if mask.any():
                self.masks[obj_id] = mask
                result.reference = list(range(len(result.points)))
            else:
                result.reference = []

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        frame = given if last is None else last
        self.masks[obj_id] = frame.ids == obj_id


class PreviousMaskPrompter:
    """Prompts each object with the interior points of its previous mask."""

    name = "previous-mask"

    def __init__(self, segmenter: SamSegmenter, max_points: int = MAX_POINTS_PER_OBJECT) -> None:
        self.segmenter = segmenter
        self.max_points = max_points
        self.memory = _MaskMemory()

    def new_frame(self, rgb: np.ndarray) -> None:
        pass

    def given(self, obj_id: int, mask: np.ndarray, points: np.ndarray) -> None:
        self.memory.masks[obj_id] = mask

    def track(self, obj_ids: list[int]) -> dict[int, Tracked]:
        out = {}
        for obj_id in obj_ids:
            previous = self.memory.masks[obj_id]
            points = interior_points(previous, self.max_points, DEFAULT_MIN_AREA)
            segmentation = self.segmenter.segment(group_points_by_component(points, previous))
            out[obj_id] = Tracked(points, [1.0] * len(points), segmentation, reference=[])
        return out

    def end_frame(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        self.memory.update(ids, tracked)

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        self.memory.restore(obj_id, given, last)


def _box(mask: np.ndarray, margin: int = 0) -> np.ndarray | None:
    """(4,) float32 (x0, y0, x1, y1) box of ``mask``'s pixels grown by ``margin``, clipped."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    height, width = mask.shape
    return np.array(
        [
            max(cols.min() - margin, 0),
            max(rows.min() - margin, 0),
            min(cols.max() + margin, width - 1),
            min(rows.max() + margin, height - 1),
        ],
        dtype=np.float32,
    )


class PerSamPrompter:
    """PerSAM's training-free video recipe (module docstring)."""

    name = "persam"

    def __init__(self, segmenter: SamSegmenter) -> None:
        self.segmenter = segmenter
        self.targets: dict[int, torch.Tensor] = {}  # object → (C,) unit target feature
        self.memory = _MaskMemory()

    def new_frame(self, rgb: np.ndarray) -> None:
        pass

    def given(self, obj_id: int, mask: np.ndarray, points: np.ndarray) -> None:
        self.targets[obj_id] = self._target_feature(mask)
        self.memory.masks[obj_id] = mask

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        self.segmenter.set_frame(given.rgb)  # the target feature needs that frame's embedding
        self.targets[obj_id] = self._target_feature(given.ids == obj_id)
        self.memory.restore(obj_id, given, last)

    def end_frame(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        self.memory.update(ids, tracked)

    @torch.inference_mode()
    def _target_feature(self, mask: np.ndarray) -> torch.Tensor:
        embedding = self.segmenter.embedding  # (1, C, h, w)
        grid = embedding.features.shape[-2:]
        side = self.segmenter.sam.image_encoder.img_size
        rows, cols = embedding.input_size
        resized = cv2.resize(mask.astype(np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR)
        padded = np.zeros((side, side), np.float32)
        padded[:rows, :cols] = resized
        small = F.interpolate(torch.from_numpy(padded)[None, None], size=grid, mode="bilinear")
        feats = embedding.features[0].permute(1, 2, 0)[
            small[0, 0].to(embedding.features.device) > 0
        ]
        if len(feats) == 0:  # a mask too small for the grid: its largest value's position
            index = int(small.flatten().argmax())
            feats = embedding.features[0].flatten(1)[:, index][None]
        target = 0.5 * feats.max(dim=0).values + 0.5 * feats.mean(dim=0)
        return target / target.norm()

    @torch.inference_mode()
    def similarity(self, obj_id: int) -> np.ndarray:
        """(H, W) float32 cosine similarity of the current frame with the object's target."""
        embedding = self.segmenter.embedding
        feats = embedding.features[0]
        feats = feats / feats.norm(dim=0, keepdim=True)
        sim = torch.einsum("c,chw->hw", self.targets[obj_id], feats)[None, None]
        sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
        sam = self.segmenter.sam
        full = sam.postprocess_masks(sim, embedding.input_size, embedding.original_size)
        return full[0, 0].float().cpu().numpy()

    def track(self, obj_ids: list[int]) -> dict[int, Tracked]:
        return {obj_id: self._track_one(obj_id) for obj_id in obj_ids}

    def _track_one(self, obj_id: int) -> Tracked:
        sim = self.similarity(obj_id)
        width = sim.shape[1]
        order = np.argsort(sim, axis=None, kind="stable")
        best = order[::-1][:PERSAM_TOP_POSITIVES]
        positives = [[float(i % width), float(i // width)] for i in best]
        scores = [float(sim.flat[i]) for i in best]
        previous = self.memory.masks[obj_id]
        box = _box(previous, BOX_MARGIN)
        if box is not None:
            x0, y0, x1, y1 = _box(previous)  # type: ignore[misc]
            positives.append([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
            scores.append(float(sim[int(round((y0 + y1) / 2)), int(round((x0 + x1) / 2))]))
        negative = np.array([[float(order[0] % width), float(order[0] // width)]], np.float32)
        points = np.array(positives, dtype=np.float32)
        coords = np.vstack([points, negative])
        labels = np.array([1] * len(points) + [0], dtype=np.int64)
        first = self.segmenter.prompt(coords, labels, box=box, multimask=False)
        second = self.segmenter.prompt(
            coords, labels, mask_input=first.low_res_logits, multimask=True
        )
        box = _box(second.mask) if second.mask.any() else box
        third = self.segmenter.prompt(
            coords, labels, box=box, mask_input=second.low_res_logits, multimask=True
        )
        segmentation = Segmentation(
            mask=third.mask,
            logits=third.logits,
            confidence=float(np.clip(third.iou, 0.0, 1.0)),
            group_scores=[float(np.clip(third.iou, 0.0, 1.0))],
        )
        return Tracked(points, scores, segmentation, reference=[], negative=negative, box=box)
