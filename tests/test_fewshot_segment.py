"""The few-shot engine (`FewShotSegmenter`) on synthetic image sets with tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fewshot_images import scene, two_blob_logits, two_classes
from tiny_models import TINY_NET

from samic_vos.inference.baseline_prompters import (
    IMAGE_MASK_VALUE,
    persam_features,
    persam_similarity,
)
from samic_vos.inference.fewshot_engine import FewShotSegmenter
from samic_vos.inference.prompter import Reference, TrackerConfig
from samic_vos.model.samic_net import build_samic, preprocess
from samic_vos.prompts.heatmaps import points_to_heatmap
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import SamSegmenter


@pytest.fixture(scope="module")
def models() -> tuple[SamSegmenter, torch.nn.Module]:
    torch.manual_seed(0)
    return SamSegmenter(build_sam("tiny", random_init=True), "cpu"), build_samic(TINY_NET)


def _counting(monkeypatch, obj, method: str) -> list[int]:
    """Count the calls of ``obj.method`` (the length of its first argument where it has one)."""
    inner, calls = getattr(obj, method), []

    def counted(*args, **kwargs):
        calls.append(len(args[0]) if args and hasattr(args[0], "__len__") else 1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(obj, method, counted)
    return calls


def _check_result(result, size) -> None:
    assert result.ids.shape == size and result.ids.dtype == np.uint8
    assert result.instances.shape == size and result.instances.dtype == np.uint8
    assert sorted(result.classes) == [1, 2]
    assert set(np.unique(result.ids)) <= {0, 1, 2}
    for found in result.classes.values():
        assert found.points.dtype == np.float32 and found.points.shape[1] == 2
        assert len(found.scores) == len(found.points) == len(found.instances)
        assert 0.0 <= found.confidence <= 1.0
        for x, y in found.points:
            assert 0 <= x <= size[1] - 1 and 0 <= y <= size[0] - 1
    # Every instance pixel belongs to a class and every class pixel to an instance.
    assert np.array_equal(result.instances > 0, result.ids > 0)


@pytest.mark.parametrize("shots", [1, 5])
def test_samic_k_shot_features_once_batched_and_heat_maps_averaged(models, shots, monkeypatch):
    segmenter, net = models
    config = TrackerConfig(batch_size=3)
    engine = FewShotSegmenter("samic", segmenter, net, config)
    backbone = _counting(monkeypatch, net, "extract_features")
    embeds = _counting(monkeypatch, segmenter, "embed")
    references = [Reference(*two_classes(seed)) for seed in range(shots)]
    engine.set_references(references)
    assert engine.reference_feature_calls == shots
    assert backbone == [min(shots, 3), *([shots - 3] if shots > 3 else [])]
    assert len(embeds) == shots  # each reference encoded once, to derive its prompts
    # Targets of two sizes, in two calls: reference features are never computed again.
    targets = [two_classes(10 + n)[0] for n in range(4)]
    targets.append(scene(20, [(1, 5, 5, 30), (2, 40, 60, 30)], size=(90, 100))[0])
    results = engine.segment(targets[:3]) + engine.segment(targets[3:])
    assert engine.reference_feature_calls == shots
    # The backbone ran over the targets in batches of batch_size (3 + 2), SAM once per target.
    assert backbone[-2:] == [3, 2]
    assert sum(backbone) == shots + 5 and len(embeds) == shots + 5
    for rgb, result in zip(targets, results, strict=True):
        _check_result(result, rgb.shape[:2])

    # The heat map a class's points come from is the mean of SAMIC's maps from each reference.
    heats = engine.prompter._heatmaps(targets[:1])[0]
    size = tuple(TINY_NET.input_size)
    with torch.no_grad():
        tgt = net.extract_features(preprocess(targets[0], size, TINY_NET.resize))
        for class_id in (1, 2):
            maps = []
            for ref, points in zip(references, engine.reference_points, strict=True):
                feats = net.extract_features(preprocess(ref.rgb, size, TINY_NET.resize))
                heat = points_to_heatmap(points[class_id], ref.rgb.shape[:2], size, 0.02)
                out = torch.sigmoid(net.predict(feats, torch.from_numpy(heat)[None, None], tgt))
                maps.append(out[0, 0].numpy())
            assert np.allclose(heats[class_id], np.mean(maps, axis=0), atol=1e-5)


def test_a_class_in_some_references_only_uses_those(models):
    segmenter, net = models
    engine = FewShotSegmenter("samic", segmenter, net, TrackerConfig())
    only_red = scene(3, [(1, 10, 10, 20)])
    engine.set_references([Reference(*two_classes(0)), Reference(*only_red)])
    assert [r.index for r in engine.prompter._class_refs[1]] == [0, 1]
    assert [r.index for r in engine.prompter._class_refs[2]] == [0]
    (result,) = engine.segment([two_classes(7)[0]])
    assert sorted(result.classes) == [1, 2]


class _TwoBlobs:
    """SAMIC's head replaced by a fixed prediction: two blobs, left and right."""

    def __call__(self, ref_feats, ref_heat, tgt_feats):
        return two_blob_logits(ref_heat, ((0.3, 0.25), (0.7, 0.75)))


class _SquareSam:
    """SAM replaced by a decoder that answers each point with a square around it."""

    def __init__(self, segmenter: SamSegmenter, half: int = 6) -> None:
        self.inner = segmenter
        self.half = half

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def segment_instances(self, groups):
        height, width = self.inner.embedding.original_size
        logits = np.full((len(groups), height, width), -5.0, np.float32)
        for g, group in enumerate(groups):
            x, y = (int(round(v)) for v in group[0])
            # the logit falls off from the point: overlaps go to the nearer point
            rows, cols = np.ogrid[:height, :width]
            near = np.maximum(np.abs(rows - y), np.abs(cols - x))
            logits[g] = np.where(near <= self.half, 5.0 - near * 0.1, -5.0)
        union = logits.max(axis=0)
        from samic_vos.sam.segmenter import Segmentation

        seg = Segmentation(union > 0, union, 0.9, [0.9] * len(groups))
        return seg, logits


def test_each_heat_map_region_is_its_own_instance_and_the_class_is_their_union(models, monkeypatch):
    segmenter, net = models
    fake = _SquareSam(segmenter)
    engine = FewShotSegmenter("samic", fake, net, TrackerConfig())  # type: ignore[arg-type]
    engine.set_references([Reference(*scene(0, [(1, 10, 10, 20)]))])
    monkeypatch.setattr(net, "predict", _TwoBlobs())
    (result,) = engine.segment([scene(1, [(1, 5, 5, 10), (1, 35, 55, 10)])[0]])
    found = result.classes[1]
    assert len(found.points) == 2 and len(found.instances) == 2
    # Points at the two blobs (heat-map 0.3/0.7 of the height, 0.25/0.75 of the width).
    left, right = sorted(found.points.tolist())
    assert abs(left[0] - 0.25 * 80 + 0.5) < 2 and abs(left[1] - 0.3 * 60 + 0.5) < 2
    assert abs(right[0] - 0.75 * 80 + 0.5) < 2 and abs(right[1] - 0.7 * 60 + 0.5) < 2
    # Semantic: one class over both squares; instances: 1 and 2, each its own square.
    assert np.array_equal(result.ids == 1, found.instances[0] | found.instances[1])
    assert sorted(np.unique(result.instances).tolist()) == [0, 1, 2]
    assert found.instance_ids == [1, 2]
    for number, mask in enumerate(found.instances, start=1):
        assert np.array_equal(result.instances == number, mask)


def test_overlapping_classes_go_to_the_higher_logit(models, monkeypatch):
    segmenter, net = models
    fake = _SquareSam(segmenter)
    engine = FewShotSegmenter("samic", fake, net, TrackerConfig())  # type: ignore[arg-type]
    engine.set_references([Reference(*two_classes(0))])
    monkeypatch.setattr(net, "predict", _TwoBlobs())
    (result,) = engine.segment([two_classes(1)[0]])
    # Both classes predicted the same two squares with the same logits: ties go to class 1.
    assert set(np.unique(result.ids)) == {0, 1}
    assert (result.classes[2].instances[0]).any()


def test_sambox_points_are_the_reference_prompts(models, monkeypatch):
    segmenter, net = models
    engine = FewShotSegmenter("samic", segmenter, net, TrackerConfig())
    embeds = _counting(monkeypatch, segmenter, "embed")
    rgb, ids = two_classes(0)
    clicks = {1: np.array([[15.0, 17.0], [20.0, 12.0]], np.float32), 2: np.array([[57.0, 43.0]])}
    engine.set_references([Reference(rgb, ids, points=clicks)])
    assert embeds == []  # nothing to derive: SAM never ran on the reference
    for class_id, points in clicks.items():
        assert np.array_equal(engine.reference_points[0][class_id], points.astype(np.float32))
        expected = points_to_heatmap(points, (60, 80), TINY_NET.input_size, 0.02)
        assert np.array_equal(engine.prompter._class_refs[class_id][0].heat[0, 0].numpy(), expected)
    (result,) = engine.segment([two_classes(5)[0]])
    _check_result(result, (60, 80))


@pytest.mark.parametrize("shots", [1, 5])
def test_persam_image_recipe_mean_target_argmax_argmin(models, shots, monkeypatch):
    segmenter, _ = models
    engine = FewShotSegmenter("persam", segmenter, None, TrackerConfig())
    references = [Reference(*two_classes(seed)) for seed in range(shots)]
    engine.set_references(references)
    assert engine.reference_feature_calls == shots
    for class_id in (1, 2):
        means = [
            persam_features(
                segmenter, segmenter.embed(r.rgb), r.ids == class_id, IMAGE_MASK_VALUE
            ).mean(0)
            for r in references
        ]
        mean = torch.stack(means).mean(0)
        target, semantic = engine.prompter._targets[class_id]
        assert torch.allclose(semantic, mean, atol=1e-6)
        assert torch.allclose(target, mean / mean.norm(), atol=1e-6)
    prompts = _counting(monkeypatch, segmenter, "prompt")
    target = two_classes(9)[0]
    (result,) = engine.segment([target])
    _check_result(result, (60, 80))
    assert len(prompts) == 3 * 2  # three SAM calls per class
    sim = persam_similarity(segmenter, segmenter.embed(target), engine.prompter._targets[1][0])
    (x, y), (score,) = result.classes[1].points[0], result.classes[1].scores
    assert sim[int(y), int(x)] == pytest.approx(sim.max()) and score == pytest.approx(sim.max())
    assert len(result.classes[1].instances) == 1


def test_bad_references_are_refused(models):
    segmenter, net = models
    engine = FewShotSegmenter("samic", segmenter, net, TrackerConfig())
    rgb, ids = two_classes(0)
    with pytest.raises(ValueError, match="no reference"):
        engine.set_references([])
    with pytest.raises(ValueError, match="mask is 40x30 but the image is 80x60"):
        engine.set_references([Reference(rgb, ids[:30, :40])])
    with pytest.raises(ValueError, match="hold no class"):
        engine.set_references([Reference(rgb, np.zeros_like(ids))])
    persam = FewShotSegmenter("persam", segmenter, None, TrackerConfig())
    with pytest.raises(ValueError, match="class 3 has an empty mask in every reference"):
        clicked = {3: np.array([[5.0, 5.0]])}
        persam.set_references([Reference(rgb, ids, points=clicked)])
    with pytest.raises(ValueError, match="needs a SAMIC network"):
        FewShotSegmenter("samic", segmenter, None, TrackerConfig())
    with pytest.raises(RuntimeError, match="set_references"):
        FewShotSegmenter("persam", segmenter, None, TrackerConfig()).segment([rgb])
