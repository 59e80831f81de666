"""Optical flow motion scores, dynamic-frame selection and the per-video cache."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from samic_vos.runtime.errors import UserError
from samic_vos.training import optical_flow
from samic_vos.training.optical_flow import (
    FlowConfig,
    cached_motion_scores,
    motion_scores,
    select_dynamic_frames,
)

H, W, SIDE = 96, 128, 28
NATIVE = FlowConfig(working_size=W)  # frames are small: no downscaling


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB texture (uint8): flow is well defined everywhere on it."""
    noise = np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 2.5 - 190, 0, 255).astype(np.uint8)


def square_video(positions: list[tuple[int, int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames with a textured square at ``positions`` (x, y of its corner) on a static scene."""
    background, patch = texture(H, W, 1), texture(SIDE, SIDE, 2)
    frames, masks = [], []
    for x, y in positions:
        frame = background.copy()
        frame[y : y + SIDE, x : x + SIDE] = patch
        mask = np.zeros((H, W), dtype=bool)
        mask[y : y + SIDE, x : x + SIDE] = True
        frames.append(frame)
        masks.append(mask)
    return frames, masks


def moving_square() -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """12 frames; the square jumps 6 px right at frames 3, 7 and 10 only."""
    moves = [3, 7, 10]
    positions, x = [], 20
    for t in range(12):
        x += 6 if t in moves else 0
        positions.append((x, 30))
    frames, masks = square_video(positions)
    return frames, masks, moves


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_moving_frames_are_selected(method: str) -> None:
    frames, masks, moves = moving_square()
    config = FlowConfig(method=method, working_size=W)
    for given in (None, masks):
        scores = motion_scores(iter(frames), given, config)
        assert scores.shape == (12,) and np.isnan(scores[0])
        assert select_dynamic_frames(scores, top_k=3, min_gap=1) == moves
        still = [t for t in range(1, 12) if t not in moves]
        assert scores[still].max() < 0.5 * scores[moves].min()
    # With the mask, the score is the object's displacement: 6 px (Farnebäck smooths more).
    tolerance = {"dis": 1.5, "farneback": 2.5}[method]
    assert motion_scores(frames, masks, config)[moves] == pytest.approx(6.0, abs=tolerance)


def pan_video(object_moves: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The camera pans 5 px a frame over a scene; the square is fixed in it or moves 6 px more."""
    scene, patch = texture(H, W + 80, 3), texture(SIDE, SIDE, 4)
    frames, masks = [], []
    for t in range(6):
        world_x = 60 + (6 * t if object_moves else 0)
        canvas = scene.copy()
        canvas[30 : 30 + SIDE, world_x : world_x + SIDE] = patch
        left = 5 * t
        frames.append(canvas[:, left : left + W].copy())
        mask = np.zeros((H, W), dtype=bool)
        mask[30 : 30 + SIDE, world_x - left : world_x - left + SIDE] = True
        masks.append(mask)
    return frames, masks


def test_camera_pan_is_discounted() -> None:
    still_frames, still_masks = pan_video(object_moves=False)
    moving_frames, moving_masks = pan_video(object_moves=True)
    still = motion_scores(still_frames, still_masks, NATIVE)[1:]
    moving = motion_scores(moving_frames, moving_masks, NATIVE)[1:]
    plain = motion_scores(still_frames, None, NATIVE)[1:]
    assert still.max() < 1.0  # the object rides with the pan: no motion of its own
    assert moving.min() > 4.0  # 6 px against the background
    assert plain.min() > 4.0  # without a mask the 5 px pan is all there is to see


def test_object_absent_frames_are_not_candidates() -> None:
    frames, masks, _ = moving_square()
    masks = [m if t < 5 else np.zeros_like(m) for t, m in enumerate(masks)]
    scores = motion_scores(frames, masks, NATIVE)
    # Frame 5 still scores from t−1's mask; from 6 on, neither frame holds the object.
    assert np.isfinite(scores[1:6]).all() and np.isnan(scores[6:]).all()
    assert all(t < 6 for t in select_dynamic_frames(scores, top_k=10, min_gap=1))


def test_id_map_masks_and_void_pixels() -> None:
    frames, masks, moves = moving_square()
    id_maps = []
    for mask in masks:
        ids = mask.astype(np.uint8) * 2  # object id 2
        ids[:4] = 255  # void border, excluded from the background
        id_maps.append(ids)
    scores = motion_scores(frames, id_maps, NATIVE)
    assert np.allclose(scores, motion_scores(frames, masks, NATIVE), equal_nan=True, atol=0.2)
    assert select_dynamic_frames(scores, 3, 1) == moves


def test_min_gap_and_greedy_order() -> None:
    scores = np.array([np.nan, 5, 9, 8, 1, 7, np.nan, 6])
    assert select_dynamic_frames(scores, top_k=3, min_gap=2) == [2, 5, 7]
    assert select_dynamic_frames(scores, top_k=3, min_gap=1) == [2, 3, 5]
    assert select_dynamic_frames(scores, top_k=10, min_gap=3) == [2, 5]
    # Frame 0 is never picked even with the highest score.
    assert select_dynamic_frames(np.array([100.0, 1, 2]), top_k=3, min_gap=1) == [1, 2]
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.uniform(0, 10, 60)
        picks = select_dynamic_frames(scores, top_k=8, min_gap=4)
        assert picks == sorted(set(picks)) and len(picks) == 8 and 0 not in picks
        assert min(np.diff(picks)) >= 4
        assert picks[0] >= 1 and scores.argmax() in picks + [0]
    with pytest.raises(UserError):
        select_dynamic_frames(scores, top_k=3, min_gap=0)


def test_bad_inputs_raise_user_errors(tmp_path: Path) -> None:
    frames, masks, _ = moving_square()
    with pytest.raises(UserError, match="mask of frame 0: size 127x96 differs .* 128x96"):
        motion_scores(frames, [m[:, :-1] for m in masks], NATIVE)
    with pytest.raises(UserError, match="fewer masks"):
        motion_scores(frames, masks[:5], NATIVE)
    with pytest.raises(UserError, match="cannot read"):
        motion_scores([tmp_path / "missing.jpg"], None, NATIVE)
    with pytest.raises(UserError, match="method must be one of dis, farneback, got 'raft'"):
        FlowConfig(method="raft")
    with pytest.raises(UserError, match="dis_preset must be one of ultrafast, fast, medium"):
        FlowConfig(dis_preset="slow")
    with pytest.raises(UserError, match="working_size must be an integer >= 16"):
        FlowConfig(working_size=0)


def write_frames(folder: Path, frames: list[np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, frame in enumerate(frames):
        path = folder / f"{t:05d}.png"  # lossless, so scores match the arrays'
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def test_cache_hit_does_not_recompute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames, masks, _ = moving_square()
    video = tmp_path / "video"
    paths = write_frames(video, frames)
    expected = motion_scores(frames, None, NATIVE)
    calls = []
    real = optical_flow.compute_flow
    monkeypatch.setattr(optical_flow, "compute_flow", lambda *a: calls.append(1) or real(*a))
    cache = tmp_path / "cache"
    first = cached_motion_scores(video, paths, None, NATIVE, cache)
    assert len(calls) == 11 and len(list(cache.glob("*.npz"))) == 1
    np.testing.assert_allclose(first, expected)  # paths and arrays give the same scores
    second = cached_motion_scores(video, paths, None, NATIVE, cache)
    assert len(calls) == 11
    np.testing.assert_array_equal(first, second)
    # Selection settings share the entry; flow settings, or masks, are other entries; an
    # edited frame invalidates the entry.
    cached_motion_scores(video, paths, None, FlowConfig(working_size=W, top_k=2), cache)
    assert len(calls) == 11
    cached_motion_scores(video, paths, None, FlowConfig(working_size=64), cache)
    assert len(calls) == 22
    mask_dir = tmp_path / "masks"
    mask_dir.mkdir()
    cached_motion_scores(video, paths, masks, NATIVE, cache, mask_key=mask_dir)
    assert len(calls) == 33
    write_frames(video, frames[::-1])
    assert cached_motion_scores(video, paths, None, NATIVE, cache)[3] != first[3]
    assert len(calls) == 44
    with pytest.raises(ValueError, match="mask_key"):
        cached_motion_scores(video, paths, masks, NATIVE, cache)


@pytest.mark.parametrize("damage", ["cut", "garbage", "empty"])
def test_a_damaged_cache_entry_is_recomputed(tmp_path: Path, damage: str) -> None:
    """A cut, overwritten or emptied cache file (a copied cache, a full disk elsewhere) is
    computed again and replaced, as a foreign entry is: not a crash in every later run."""
    frames, _, _ = moving_square()
    video = tmp_path / "video"
    paths = write_frames(video, frames)
    cache = tmp_path / "cache"
    first = cached_motion_scores(video, paths, None, NATIVE, cache)
    (entry,) = cache.glob("*.npz")
    data = entry.read_bytes()
    entry.write_bytes({"cut": data[:300], "garbage": b"\0" * 300, "empty": b""}[damage])
    np.testing.assert_array_equal(cached_motion_scores(video, paths, None, NATIVE, cache), first)
    assert entry.read_bytes() == data


def test_default_cache_dir_follows_samic_vos_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path))
    assert optical_flow.default_cache_dir() == tmp_path / "cache" / "flow"
    monkeypatch.delenv("SAMIC_VOS_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert optical_flow.default_cache_dir() == tmp_path / "xdg/samic-vos/cache/flow"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert optical_flow.default_cache_dir() == Path.home() / ".cache/samic-vos/cache/flow"


def test_real_davis_sequence(davis_root: Path, tmp_path: Path) -> None:
    seq = "dog-agility"  # 25 frames, the shortest train sequence
    frames = sorted((davis_root / "JPEGImages/480p" / seq).glob("*.jpg"))
    annotations = davis_root / "Annotations/480p" / seq
    masks = sorted(annotations.glob("*.png"))
    config = FlowConfig(top_k=5, min_gap=3)
    scores = cached_motion_scores(frames[0].parent, frames, masks, config, tmp_path, annotations)
    assert scores.shape == (25,) and np.isnan(scores[0]) and np.isfinite(scores[1:]).all()
    picks = select_dynamic_frames(scores, config.top_k, config.min_gap)
    assert len(picks) == 5 and picks == sorted(set(picks)) and picks[0] >= 1
    assert min(np.diff(picks)) >= 3
    # The most dynamic frame is always picked, and picks beat the median frame.
    assert int(np.nanargmax(scores)) in picks
    assert np.median(scores[picks]) > np.nanmedian(scores)
