"""The SAMIC prompter: the object's reference frame(s) → SAMIC heat map → peaks → SAM.

Per object the state is two references (frame features + the heat map of its prompts): the
frame where it was last found (t−1 when tracking goes well) and the frame where it was given,
as a second reference against drift (their heat maps are averaged, as K-shot references are).
The backbone features of each frame are computed once and shared by all objects; all
references are decoded by SAMIC in batches. The peaks inside SAM's new mask become the
object's next reference; an object with no accepted peak keeps its last good reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from samic_vos.inference.prompter import (
    ClassFound,
    ClassResult,
    Reference,
    RestoredFrame,
    Tracked,
    TrackerConfig,
    reference_embedding,
)
from samic_vos.model.samic_net import SamicNet, preprocess
from samic_vos.prompts.heatmaps import average_heatmaps, points_to_heatmap
from samic_vos.prompts.peaks import find_peaks
from samic_vos.runtime.stage_threads import StageThreads
from samic_vos.sam.segmenter import SamSegmenter, prompts_from_mask


@dataclass
class _Reference:
    feats: list[torch.Tensor]  # SAMIC backbone features of the reference frame, batch 1
    heat: torch.Tensor  # (1, 1, h, w) heat map of the reference prompts, in [0, 1]


@dataclass
class _State:
    last: _Reference  # the last frame where the object was found
    first: _Reference  # the frame where the object was given


class SamicPrompter:
    """SAMIC's prompts; ``net`` and ``segmenter`` must already sit on ``device``.

    SAMIC's backbone and head run under ``threads``' ``samic`` count (default: all ``auto``;
    jobs pass their segmenter's, :attr:`SamSegmenter.threads`).
    """

    name = "samic"

    def __init__(
        self,
        net: SamicNet,
        segmenter: SamSegmenter,
        config: TrackerConfig,
        device: torch.device | str = "cpu",
        threads: StageThreads | None = None,
    ) -> None:
        self.net = net.eval()
        self.threads = threads or StageThreads.resolve()
        self.segmenter = segmenter
        self.config = config
        self.device = torch.device(device)
        self.input_size: tuple[int, int] = tuple(net.config.input_size)  # (h, w)
        self.states: dict[int, _State] = {}
        self._feats: list[torch.Tensor] = []
        self._size: tuple[int, int] = (0, 0)

    def features(self, rgb: np.ndarray) -> list[torch.Tensor]:
        """SAMIC backbone features of a (H, W, 3) uint8 RGB frame, batch 1, on the device."""
        with self.threads.stage("samic"):
            return samic_features(self.net, [rgb], self.device)

    def new_frame(self, rgb: np.ndarray) -> None:
        self._size = (rgb.shape[0], rgb.shape[1])
        self._feats = self.features(rgb)

    def given(self, obj_id: int, mask: np.ndarray, points: np.ndarray) -> None:
        reference = self._reference(self._feats, points)
        self.states[obj_id] = _State(last=reference, first=reference)

    def end_frame(self, ids: np.ndarray, tracked: dict[int, Tracked]) -> None:
        pass  # SAMIC's references change in track(), from SAM's own masks

    def restore(self, obj_id: int, given: RestoredFrame, last: RestoredFrame | None) -> None:
        self._size = (given.rgb.shape[0], given.rgb.shape[1])
        first = self._reference(self.features(given.rgb), given.points)
        latest = first if last is None else self._reference(self.features(last.rgb), last.points)
        self.states[obj_id] = _State(last=latest, first=first)

    @torch.inference_mode()
    def track(self, obj_ids: list[int]) -> dict[int, Tracked]:
        with self.threads.stage("samic"):
            heats = self._predict(obj_ids)
        out = {}
        for obj_id in obj_ids:
            peaks = find_peaks(heats[obj_id], self._size, self.config.peaks)
            points = np.array([[p.x, p.y] for p in peaks], dtype=np.float32).reshape(-1, 2)
            segmentation = self.segmenter.segment([point[None] for point in points])
            inside = points_inside(segmentation.mask, points)
            if inside.any():
                self.states[obj_id].last = self._reference(self._feats, points[inside])
            out[obj_id] = Tracked(
                points=points,
                scores=[p.score for p in peaks],
                segmentation=segmentation,
                reference=[int(i) for i in np.flatnonzero(inside)],
            )
        return out

    def _predict(self, obj_ids: list[int]) -> dict[int, np.ndarray]:
        """SAMIC's heat map (h, w) float32 in [0, 1] of each object on the current frame.

        All references (each object's last, and its first when it differs) are decoded in
        batches of ``config.batch_size``; an object's heat maps are averaged, as K shots are.
        """
        refs: list[tuple[int, _Reference]] = []
        for obj_id in obj_ids:
            state = self.states[obj_id]
            refs.append((obj_id, state.last))
            if self.config.first_frame_reference and state.first is not state.last:
                refs.append((obj_id, state.first))
        pairs = [(r.feats, r.heat, self._feats) for _, r in refs]
        maps = predict_heatmaps(self.net, pairs, self.config.batch_size)
        heats: dict[int, list[np.ndarray]] = {obj_id: [] for obj_id in obj_ids}
        for (obj_id, _), heat in zip(refs, maps, strict=True):
            heats[obj_id].append(heat)
        return {obj_id: average_heatmaps(found) for obj_id, found in heats.items()}

    def _reference(self, feats: list[torch.Tensor], points: np.ndarray) -> _Reference:
        heat = prompt_heat(points, self._size, self.input_size, self.config.heat_sigma)
        return _Reference(feats, heat.to(self.device))


@dataclass
class _ClassReference:
    """One class in one reference: the reference's index and the class's prompt heat map."""

    index: int
    heat: torch.Tensor  # (1, 1, h, w) on the device


class SamicImagePrompter:
    """SAMIC's prompts of each class of K references on new images; ``net`` and ``segmenter``
    on ``device``.

    Per class, SAMIC predicts the target's heat map from each reference where the class appears
    (the reference's backbone features with the heat map of the class's prompts there: the
    points a person clicked, or the points that reproduce its mask with SAM, as ``track``
    prompts frame 0); the K heat maps are averaged, the peak detector gives one point per
    region, and each point is its own SAM prompt: one instance each. Reference features are
    computed once per reference set; per batch of targets the backbone runs once over the
    targets and the head over all (target, class, reference) pairs, ``config.batch_size`` at
    a time, under the segmenter's ``samic`` threads.
    """

    name = "samic"

    def __init__(
        self,
        net: SamicNet,
        segmenter: SamSegmenter,
        config: TrackerConfig,
        device: torch.device | str = "cpu",
    ) -> None:
        self.net = net.eval()
        self.segmenter = segmenter
        self.config = config
        self.device = torch.device(device)
        self.reference_feature_calls = 0
        self.reference_points: list[dict[int, np.ndarray]] = []
        self._ref_feats: list[list[torch.Tensor]] = []
        self._class_refs: dict[int, list[_ClassReference]] = {}
        self._heats: list[dict[int, np.ndarray]] = []

    def set_references(self, references: Sequence[Reference], present: list[set[int]]) -> None:
        input_size = tuple(self.net.config.input_size)
        batch = self.config.batch_size
        self.reference_points = [{} for _ in references]
        self._ref_feats = []  # the features of these references only (indexes 0..K-1)
        self._class_refs = {c: [] for c in sorted(set().union(*present))}
        for start in range(0, len(references), batch):
            chunk = [ref.rgb for ref in references[start : start + batch]]
            with self.segmenter.threads.stage("samic"):
                feats = samic_features(self.net, chunk, self.device)
            self._ref_feats += [[f[i : i + 1] for f in feats] for i in range(len(chunk))]
            self.reference_feature_calls += len(chunk)
        for index, ref in enumerate(references):
            size = (ref.rgb.shape[0], ref.rgb.shape[1])
            clicked = ref.points or {}
            derive = [c for c in sorted(present[index]) if not len(clicked.get(c, ()))]
            if derive:
                reference_embedding(self.segmenter, ref)
            for class_id in sorted(present[index]):
                if class_id in derive:
                    points, _ = prompts_from_mask(
                        self.segmenter,
                        ref.ids == class_id,
                        max_points=self.config.first_frame_max_points,
                        target_iou=self.config.first_frame_target_iou,
                    )
                else:
                    points = np.asarray(clicked[class_id], dtype=np.float32).reshape(-1, 2)
                self.reference_points[index][class_id] = points.astype(np.float32)
                heat = prompt_heat(points, size, input_size, self.config.heat_sigma)  # type: ignore[arg-type]
                self._class_refs[class_id].append(_ClassReference(index, heat.to(self.device)))

    def prepare(self, images: Sequence[np.ndarray]) -> None:
        self._heats = self._heatmaps(images)

    def _heatmaps(self, images: Sequence[np.ndarray]) -> list[dict[int, np.ndarray]]:
        """Per target, per class, SAMIC's heat map (h, w) float32 averaged over the class's
        references."""
        batch = self.config.batch_size
        classes = list(self._class_refs)
        targets: list[list[torch.Tensor]] = []
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            with self.segmenter.threads.stage("samic"):
                feats = samic_features(self.net, chunk, self.device)
            targets += [[f[i : i + 1] for f in feats] for i in range(len(chunk))]
        keys = [(t, c, r) for t in range(len(images)) for c in classes for r in self._class_refs[c]]
        pairs = [(self._ref_feats[r.index], r.heat, targets[t]) for t, _, r in keys]
        with self.segmenter.threads.stage("samic"):
            maps = predict_heatmaps(self.net, pairs, batch)
        grouped: list[dict[int, list[np.ndarray]]] = [{c: [] for c in classes} for _ in images]
        for (t, c, _), heat in zip(keys, maps, strict=True):
            grouped[t][c].append(heat)
        return [{c: average_heatmaps(m) for c, m in per.items()} for per in grouped]

    def prompt_class(self, index: int, class_id: int, size: tuple[int, int]) -> ClassFound:
        """One class on the current target from its heat map: peaks → one SAM prompt each."""
        peaks = find_peaks(self._heats[index][class_id], size, self.config.peaks)
        points = np.array([[p.x, p.y] for p in peaks], dtype=np.float32).reshape(-1, 2)
        segmentation, logits = self.segmenter.segment_instances([p[None] for p in points])
        threshold = self.segmenter.mask_threshold
        result = ClassResult(
            points=points,
            scores=[p.score for p in peaks],
            confidence=segmentation.confidence,
            instances=[g > threshold for g in logits],
        )
        return result, segmentation, logits


@torch.inference_mode()
def samic_features(
    net: SamicNet, images: Sequence[np.ndarray], device: torch.device | str
) -> list[torch.Tensor]:
    """SAMIC backbone features of (H_i, W_i, 3) uint8 RGB images (sizes may differ: each is
    resized to the network's input size), one backbone run, batch ``len(images)``, on
    ``device``."""
    size, resize = tuple(net.config.input_size), net.config.resize
    batch = torch.cat([preprocess(rgb, size, resize) for rgb in images])  # type: ignore[arg-type]
    return net.extract_features(batch.to(device))


def prompt_heat(
    points: np.ndarray, image_size: tuple[int, int], input_size: tuple[int, int], sigma: float
) -> torch.Tensor:
    """(1, 1, h, w) float32 heat map at the network's ``input_size`` of (N, 2) (x, y) prompt
    ``points`` given in an image of ``image_size`` (H, W); on the CPU."""
    heat = points_to_heatmap(points, image_size, input_size, sigma)
    return torch.from_numpy(heat)[None, None]


@torch.inference_mode()
def predict_heatmaps(
    net: SamicNet,
    pairs: Sequence[tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]],
    batch_size: int,
) -> list[np.ndarray]:
    """SAMIC's target heat map, (h, w) float32 in [0, 1], of each (reference features,
    reference heat (1, 1, h, w), target features) pair (features of batch 1, on the net's
    device), decoded ``batch_size`` pairs at a time. Pairs of one chunk sharing one target's
    features (the same list) expand it instead of copying it."""
    out: list[np.ndarray] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        ref_feats = [torch.cat(level) for level in zip(*(p[0] for p in chunk), strict=True)]
        ref_heat = torch.cat([p[1] for p in chunk])
        if all(p[2] is chunk[0][2] for p in chunk):
            tgt_feats = [f.expand(len(chunk), -1, -1, -1) for f in chunk[0][2]]
        else:
            tgt_feats = [torch.cat(level) for level in zip(*(p[2] for p in chunk), strict=True)]
        heat = torch.sigmoid(net.predict(ref_feats, ref_heat, tgt_feats))
        out.extend(heat[:, 0].float().cpu().numpy())
    return out


def points_inside(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each (x, y) point's pixel lies inside ``mask`` (H, W)."""
    height, width = mask.shape
    cols = np.clip(np.rint(points[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.rint(points[:, 1]).astype(int), 0, height - 1)
    return mask[rows, cols]
