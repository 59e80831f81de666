"""The training-free prompters on crafted inputs where their points must land."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from samic_vos.inference.baseline_prompters import BOX_MARGIN, PerSamPrompter, PreviousMaskPrompter
from samic_vos.inference.prompter import RestoredFrame, Tracked
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import ImageEmbedding, PromptResult, SamSegmenter, Segmentation

SIDE = 128  # the tiny SAM's encoder input; frames are SIDE x SIDE, so no resize
GRID = 8  # its embedding grid (SIDE / patch 16)
CELL = SIDE // GRID


class FakeSegmenter:
    """A segmenter whose embedding is set by the test and whose calls are recorded."""

    def __init__(self) -> None:
        self.sam = build_sam("tiny", random_init=True)
        self.features = torch.zeros(1, 32, GRID, GRID)
        self.calls: list[dict] = []
        self.next_masks: list[np.ndarray | list[np.ndarray]] = []

    # SAM's own placement of a mask on the encoder's input and upscaling back (PerSAM uses them).
    device = torch.device("cpu")
    transform = ResizeLongestSide(SIDE)
    _resized = SamSegmenter._resized
    mask_as_image = SamSegmenter.mask_as_image
    upscale = SamSegmenter.upscale
    mask_threshold = 0.0

    @property
    def embedding(self) -> ImageEmbedding:
        return ImageEmbedding(self.features, (SIDE, SIDE), (SIDE, SIDE))

    def set_frame(self, rgb: np.ndarray) -> None:
        pass

    def _record(self, call: dict) -> list[PromptResult]:
        self.calls.append(call)
        masks = self.next_masks.pop(0)
        results = []
        for index, mask in enumerate(masks if isinstance(masks, list) else [masks]):
            # the call's number, and a tenth per candidate: which one was passed on shows
            low_res = np.full((4 * GRID, 4 * GRID), len(self.calls) + index / 10, np.float32)
            logits = np.where(mask, 3.0, -3.0).astype(np.float32)
            results.append(PromptResult(mask, logits, low_res, 0.8))
        return results

    def prompt(self, points, labels, box=None, mask_input=None, multimask=None, guidance=None):
        call = {"points": points, "labels": labels, "box": box, "mask_input": mask_input}
        return self._record({**call, "multi": multimask, "guidance": guidance, "all": False})[0]

    def prompt_all_masks(self, points, labels, box=None, mask_input=None):
        call = {"points": points, "labels": labels, "box": box, "mask_input": mask_input}
        return self._record({**call, "multi": True, "guidance": None, "all": True})

    def segment(self, groups) -> Segmentation:
        self.calls.append({"groups": [np.asarray(g) for g in groups]})
        mask = np.zeros((SIDE, SIDE), bool)
        for group in groups:
            for x, y in group:
                mask[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = True
        return Segmentation(mask, np.where(mask, 1.0, -1.0).astype(np.float32), 0.9, [0.9])


def _square(row: int, col: int, size: int) -> np.ndarray:
    mask = np.zeros((SIDE, SIDE), bool)
    mask[row : row + size, col : col + size] = True
    return mask


def _cells(features: torch.Tensor, cells: list[tuple[int, int]], vector: torch.Tensor) -> None:
    for r, c in cells:
        features[0, :, r, c] = vector


def test_persam_points_follow_the_similarity_and_the_three_calls_chain():
    seg = FakeSegmenter()
    object_vec, ground_vec = torch.zeros(32), torch.zeros(32)
    object_vec[0], ground_vec[1] = 1.0, 1.0
    seg.features[0] = ground_vec[:, None, None]
    _cells(seg.features, [(1, 1), (1, 2), (2, 1), (2, 2)], object_vec)  # the object, frame 0
    prompter = PerSamPrompter(seg)
    given = _square(CELL, CELL, 2 * CELL)  # exactly those four cells
    prompter.given(1, given, np.array([[31.5, 31.5]], np.float32))
    target = prompter.targets[1]
    assert torch.allclose(target, object_vec, atol=1e-6)  # ½ max + ½ mean of identical cells

    # Frame 1: the object's features moved to cells (5, 5); one cell is the opposite of it.
    seg.features[0] = ground_vec[:, None, None]
    _cells(seg.features, [(5, 5)], object_vec)
    _cells(seg.features, [(0, 7)], -object_vec)
    sim = prompter.similarity(1).numpy()
    assert sim.shape == (SIDE, SIDE)
    peak_row, peak_col = np.unravel_index(sim.argmax(), sim.shape)
    assert 5 * CELL - 8 <= peak_row < 6 * CELL + 8 and 5 * CELL - 8 <= peak_col < 6 * CELL + 8

    second_mask = _square(5 * CELL, 5 * CELL, CELL)
    # (1)'s three masks: areas 300, 100 and 16 px; PerSAM's script compares them as uint8 (44,
    # 100, 16), so its "largest" is the second.
    first_masks = [_square(0, 0, 10) | _square(40, 40, 14), _square(0, 0, 10), _square(0, 0, 4)]
    first_masks[0][60, 60:64] = True  # 196 + 100 + 4 = 300 px
    assert [int(m.sum()) for m in first_masks] == [300, 100, 16]
    seg.next_masks = [first_masks, second_mask, second_mask]
    result = prompter.track([1])[1]
    first, second, third = seg.calls
    points, labels = first["points"], first["labels"]
    # Two most similar pixels, then the centre of the previous box grown by 10 px; no negative.
    assert labels.tolist() == [1, 1, 1]
    for x, y in points[:2]:
        assert abs(sim[int(y), int(x)] - sim.max()) < 1e-6
    # frame 0's mask spans pixels 16..47: grown to 6..57, centre (6 + 57) // 2 = 31
    assert points[2].tolist() == [31.0, 31.0]
    grown = [
        CELL - BOX_MARGIN,
        CELL - BOX_MARGIN,
        3 * CELL - 1 + BOX_MARGIN,
        3 * CELL - 1 + BOX_MARGIN,
    ]
    # (1) points + grown box, SAM's three masks; (2) the "largest" one's logits; (3) box of (2).
    assert first["box"].tolist() == grown and first["mask_input"] is None
    assert first["all"] and first["guidance"] is None
    assert second["box"] is None and second["multi"]
    assert np.all(second["mask_input"] == np.float32(1.1))  # the second of (1)'s masks
    assert third["box"].tolist() == [5 * CELL, 5 * CELL, 6 * CELL - 1, 6 * CELL - 1]
    assert third["multi"] and np.all(third["mask_input"] == 2.0)
    assert np.array_equal(result.segmentation.mask, second_mask)
    assert result.negative.shape == (0, 2) and result.points.shape == (3, 2)

    # The written mask becomes the previous mask; a lost object keeps its last good one.
    ids = second_mask.astype(np.uint8)
    prompter.end_frame(ids, {1: result})
    assert result.reference == [0, 1, 2] and np.array_equal(prompter.memory.masks[1], second_mask)
    lost = Tracked(result.points, result.scores, result.segmentation, [])
    prompter.end_frame(np.zeros_like(ids), {1: lost})
    assert lost.reference == [] and np.array_equal(prompter.memory.masks[1], second_mask)


def test_previous_mask_prompts_each_component_of_the_last_mask_and_restores_it():
    seg = FakeSegmenter()
    prompter = PreviousMaskPrompter(seg)
    two = _square(10, 10, 20) | _square(80, 70, 30)
    prompter.given(3, two, np.zeros((0, 2), np.float32))
    result = prompter.track([3])[3]
    (call,) = seg.calls
    assert len(call["groups"]) == 2 and len(result.points) == 2
    for x, y in result.points:  # interior points: deep inside each square
        assert two[int(y), int(x)]
    for x, y in result.points:  # the farthest pixel from the border: 9+ px inside a square
        assert two[int(y) - 8 : int(y) + 9, int(x) - 8 : int(x) + 9].all()
    other = PreviousMaskPrompter(seg)
    ids = np.where(_square(40, 40, 12), 3, 0).astype(np.uint8)
    frame = RestoredFrame(np.zeros((SIDE, SIDE, 3), np.uint8), ids, np.zeros((0, 2)))
    other.restore(3, given=frame, last=None)
    assert np.array_equal(other.memory.masks[3], ids == 3)


@pytest.mark.parametrize("name", ["previous-mask", "persam"])
def test_every_prompter_tracks_a_real_video_with_a_tiny_sam(tmp_path, shared_data, name):
    from samic_vos.commands.cli import main
    from samic_vos.sam.models import save_sam

    torch.manual_seed(0)
    save_sam(tmp_path / "sam.pt", build_sam("tiny", random_init=True), "tiny")
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bmx-trees").glob("*.jpg"))[:4]:
        (frames / path.name).write_bytes(path.read_bytes())
    first = shared_data / "multiobject/bmx-trees/00000.png"
    config = tmp_path / "prompter.yaml"
    config.write_text(f"prompter: {name}\n")
    out = tmp_path / "out"
    argv = ["track", str(frames), "--first-mask", str(first), "-o", str(out), "-q"]
    assert main([*argv, "--sam-checkpoint", str(tmp_path / "sam.pt"), "--config", str(config)]) == 0
    assert len(list((out / "masks").iterdir())) == 4
    assert not (out / "samic_adapted.pt").exists()  # no SAMIC network is made
