"""Training pairs from DAVIS (dynamic frames, ground-truth points) and from SAMBOX folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samic_vos.data.sambox_format import (
    SamboxAnnotation,
    SamboxInstance,
    SamboxObject,
    annotation_path_for,
    write_annotation,
)
from samic_vos.runtime.errors import UserError
from samic_vos.training.optical_flow import FlowConfig, motion_scores, select_dynamic_frames
from samic_vos.training.training_pairs import TrainingPair, pairs_from_davis, pairs_from_sambox

SEQUENCES = ["dog-agility", "rollerblade"]  # the two shortest DAVIS-2016 train sequences


def inside(points: np.ndarray, mask: np.ndarray) -> bool:
    """Every (x, y) point lies on a pixel of ``mask`` (row = y, column = x)."""
    rows, cols = np.round(points[:, 1]).astype(int), np.round(points[:, 0]).astype(int)
    return bool(mask[rows, cols].all())


@pytest.fixture(scope="module")
def davis_pairs(davis_root: Path, tmp_path_factory: pytest.TempPathFactory):
    from samic_vos.data.davis import DavisDataset

    dataset = DavisDataset(davis_root, year=2016, split="train", resolution="480p")
    config = FlowConfig(top_k=4, min_gap=3)
    cache = tmp_path_factory.mktemp("flow-cache")
    pairs = pairs_from_davis(dataset, config, cache_dir=cache, sequences=SEQUENCES)
    return dataset, config, cache, pairs


def test_davis_pairs_follow_dynamic_frames_and_masks(davis_pairs) -> None:
    dataset, config, _, pairs = davis_pairs
    assert {p.sequence for p in pairs} == set(SEQUENCES)
    for seq in SEQUENCES:
        frames = list(dataset.frame_paths(seq))
        masks = [dataset.read_annotation(seq, t) for t in range(len(frames))]
        picks = select_dynamic_frames(motion_scores(frames, masks, config), 4, 3)
        ours = [p for p in pairs if p.sequence == seq]
        targets = [frames.index(p.tgt_frame) for p in ours]
        # One object in DAVIS-2016, present in every frame: one pair per dynamic frame.
        assert targets == picks and len(picks) == 4
        for pair, t in zip(ours, targets, strict=True):
            assert frames.index(pair.ref_frame) == t - 1
            assert pair.object_id == 1 and pair.image_size == masks[t].shape == (480, 854)
            for points, mask in ((pair.ref_points, masks[t - 1]), (pair.tgt_points, masks[t])):
                assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 2
                assert 1 <= len(points) <= 8 and inside(points, mask == 1)
            # The points come from each frame's own mask: they moved with the object.
            assert not np.array_equal(pair.ref_points, pair.tgt_points)


def test_davis_pairs_reuse_the_flow_cache(davis_pairs, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, config, cache, pairs = davis_pairs
    from samic_vos.training import optical_flow

    def no_flow(*args):
        raise AssertionError("flow recomputed despite the cache")

    monkeypatch.setattr(optical_flow, "compute_flow", no_flow)
    again = pairs_from_davis(dataset, config, cache_dir=cache, sequences=SEQUENCES)
    assert [(p.sequence, p.tgt_frame) for p in again] == [(p.sequence, p.tgt_frame) for p in pairs]


def test_davis_unknown_sequence_is_a_user_error(davis_pairs) -> None:
    dataset, config, cache, _ = davis_pairs
    with pytest.raises(UserError, match="'blackswan' is not in the dataset split"):
        pairs_from_davis(dataset, config, cache_dir=cache, sequences=["blackswan"])


def annotate(folder: Path, name: str, objects: list[SamboxObject], size=(30, 40)) -> Path:
    """An image ``name`` of ``size`` (H, W) in ``folder`` and its SAMBOX sidecar."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0])).save(folder / name)
    path = annotation_path_for(folder / name)
    write_annotation(path, SamboxAnnotation(name, size, objects))
    return path


def obj(object_id: int, *points: tuple[float, float], label: str | None = None) -> SamboxObject:
    return SamboxObject(object_id, np.array(points, dtype=float), label=label)


def test_sambox_sequence_pairs(tmp_path: Path) -> None:
    root = tmp_path / "project"
    video = root / "walk"
    annotate(video, "f9.png", [obj(1, (5, 5)), obj(2, (30, 20), (31, 21))])
    annotate(video, "f10.png", [obj(1, (7, 6))])  # natural order: f9 before f10
    annotate(video, "f11.png", [obj(1, (9, 7)), obj(2, (28, 22))])
    Image.new("RGB", (40, 30)).save(video / "f12.png")  # not annotated: no pair
    annotate(root / "other", "a.png", [obj(2, (1, 1))])  # another sequence: never paired
    pairs = pairs_from_sambox(root)
    summary = [(p.sequence, p.object_id, p.ref_frame.name, p.tgt_frame.name) for p in pairs]
    assert summary == [
        ("project/walk", 1, "f9.png", "f10.png"),
        ("project/walk", 1, "f10.png", "f11.png"),
    ]
    assert isinstance(pairs[0], TrainingPair) and pairs[0].image_size == (30, 40)
    np.testing.assert_array_equal(pairs[0].ref_points, [[5, 5]])
    np.testing.assert_array_equal(pairs[1].tgt_points, [[9, 7]])
    assert pairs[1].tgt_frame == video / "f11.png" and pairs[1].tgt_points.dtype == np.float32


def test_sambox_label_pairs(tmp_path: Path) -> None:
    annotate(tmp_path, "a.jpg", [obj(1, (5, 5), label="cup"), obj(2, (9, 9), label="cup")])
    annotate(tmp_path, "b.jpg", [obj(4, (20, 10), label="cup"), obj(5, (1, 1), label="pen")])
    annotate(tmp_path, "c.jpg", [obj(1, (2, 2), label="pen"), obj(2, (3, 3))])
    annotate(tmp_path, "d.jpg", [obj(1, (2, 2), label="pen")], size=(50, 40))  # other size
    pairs = pairs_from_sambox(tmp_path, pairing="label")
    summary = [(p.sequence, p.object_id, p.ref_frame.name, p.tgt_frame.name) for p in pairs]
    assert summary == [
        ("cup", 4, "a.jpg", "b.jpg"),
        ("cup", 1, "b.jpg", "a.jpg"),
        ("pen", 1, "b.jpg", "c.jpg"),
        ("pen", 5, "c.jpg", "b.jpg"),
    ]
    # Both cups of image a form one point set.
    np.testing.assert_array_equal(pairs[0].ref_points, [[5, 5], [9, 9]])
    np.testing.assert_array_equal(pairs[1].tgt_points, [[5, 5], [9, 9]])


def test_sambox_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no SAMBOX annotations"):
        pairs_from_sambox(tmp_path)
    annotate(tmp_path, "a.png", [obj(1, (1, 1))])
    annotate(tmp_path, "b.png", [obj(2, (1, 1))])
    with pytest.raises(UserError, match="2 SAMBOX annotations but no training pair"):
        pairs_from_sambox(tmp_path)
    with pytest.raises(UserError, match="pairing 'random' is unknown"):
        pairs_from_sambox(tmp_path, pairing="random")
    annotate(tmp_path, "c.png", [obj(2, (1, 1))], size=(20, 40))
    with pytest.raises(UserError, match="c.sambox.json: 'image_size'.*share a size"):
        pairs_from_sambox(tmp_path)


def test_sambox_version_2_instances_pair_with_all_their_points(tmp_path: Path) -> None:
    def two_instances(object_id: int, a: tuple, b: tuple) -> SamboxObject:
        instances = [
            SamboxInstance(np.array([a], float), np.array([[0.0, 0.0]])),
            SamboxInstance(np.array([b], float), box=np.array([1.0, 1.0, 20.0, 20.0])),
        ]
        return SamboxObject.from_instances(object_id, instances)

    box_only = SamboxObject.from_instances(2, [SamboxInstance(box=np.array([2.0, 2.0, 9.0, 9.0]))])
    first = annotate(tmp_path, "f1.png", [two_instances(1, (5, 5), (15, 6)), box_only])
    annotate(tmp_path, "f2.png", [two_instances(1, (6, 5), (16, 7)), box_only])
    assert json.loads(first.read_text())["version"] == 2
    pairs = pairs_from_sambox(tmp_path)
    assert [(p.object_id, p.tgt_frame.name) for p in pairs] == [(1, "f2.png")]  # box only: none
    np.testing.assert_array_equal(pairs[0].ref_points, [[5, 5], [15, 6]])
    np.testing.assert_array_equal(pairs[0].tgt_points, [[6, 5], [16, 7]])
