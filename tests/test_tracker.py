"""The causal tracker's state handling, with stand-ins for SAMIC and SAM whose output is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from samic_vos.inference.prompter import TrackerConfig
from samic_vos.inference.prompters import samic_tracker
from samic_vos.inference.tracker import compose_ids
from samic_vos.runtime.stage_threads import StageThreads
from samic_vos.sam.segmenter import Segmentation

SIZE = 64


class BrightNet(torch.nn.Module):
    """SAMIC stand-in: the target heat map is high where the target frame is bright."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(input_size=(SIZE, SIZE), resize="cv2")
        self.calls: list[int] = []

    def extract_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [images.clone()]

    def predict(self, ref_feats, ref_heat, tgt_feats) -> torch.Tensor:
        self.calls.append(ref_heat.shape[0])
        bright = tgt_feats[0].mean(dim=1, keepdim=True) > 0.5
        return torch.where(bright, 10.0, -10.0).expand(ref_heat.shape[0], -1, -1, -1)


class BrightSegmenter:
    """SAM stand-in: a prompt on a bright pixel gives the bright region, with logit ±5."""

    threads = StageThreads.resolve()

    def set_frame(self, rgb: np.ndarray) -> None:
        self.bright = rgb.mean(axis=2) > 128

    def segment(self, groups) -> Segmentation:
        hit = any(self.bright[int(round(y)), int(round(x))] for g in groups for x, y in g)
        mask = self.bright.copy() if hit else np.zeros_like(self.bright)
        logits = np.where(mask, 5.0, -5.0).astype(np.float32)
        return Segmentation(mask, logits, 0.9 if hit else 0.0, [0.9] * len(groups))


def _frame(square: tuple[int, int] | None) -> np.ndarray:
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    if square is not None:
        row, col = square
        rgb[row : row + 12, col : col + 12] = 255
    return rgb


def test_object_that_leaves_and_returns_keeps_its_last_good_reference(monkeypatch):
    import samic_vos.inference.samic_prompter as prompter_module

    # Features in [0, 1] (no ImageNet normalisation), so BrightNet's threshold is simple.
    def to_unit(rgb, size, resize):
        return torch.from_numpy(rgb / 255.0).permute(2, 0, 1)[None].float()

    monkeypatch.setattr(prompter_module, "preprocess", to_unit)
    tracker = samic_tracker(BrightNet(), BrightSegmenter(), TrackerConfig())
    first = _frame((10, 10))
    mask = (first[..., 0] > 0).astype(np.uint8)
    result = tracker.step(first, mask)
    assert np.array_equal(result.ids, mask)

    result = tracker.step(_frame((12, 14)))
    assert result.ids[14, 20] == 1 and result.ids.sum() == 144
    reference = tracker.prompter.states[1].last
    for _ in range(2):  # the object leaves the frame
        result = tracker.step(_frame(None))
        assert not result.ids.any()
        assert result.objects[1].points.shape == (0, 2)
        assert tracker.prompter.states[1].last is reference
    result = tracker.step(_frame((40, 44)))  # and comes back elsewhere
    assert result.ids[45, 50] == 1 and result.ids.sum() == 144
    assert tracker.prompter.states[1].last is not reference
    # Last and first references are decoded together, in one batch of two.
    assert tracker.prompter.net.calls[-1] == 2


def test_overlaps_go_to_the_highest_logit():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:, :3] = True
    b[:, 1:] = True
    logits_a = np.full((4, 4), 1.0, np.float32)
    logits_b = np.full((4, 4), 2.0, np.float32)
    logits_b[:, 1] = 0.5
    ids = compose_ids({3: a, 7: b}, {3: logits_a, 7: logits_b}, (4, 4))
    assert ids[:, 0].tolist() == [3] * 4
    assert ids[:, 1].tolist() == [3] * 4  # both claim it; 1.0 > 0.5
    assert ids[:, 2].tolist() == [7] * 4  # both claim it; 2.0 > 1.0
    assert ids[:, 3].tolist() == [7] * 4
