"""Optical flow, per-frame motion scores and the selection of dynamic training frames.

SAMIC trains on the most dynamic frames of each video (the paper keeps ~20% of DAVIS). The
motion score of frame ``t`` comes from the dense optical flow from frame ``t−1`` to frame ``t``,
computed with OpenCV (DIS by default, Farnebäck selectable) on grayscale frames downscaled so
that their long side is :attr:`FlowConfig.working_size` pixels.

Motion score of frame ``t`` (``flow`` maps each pixel of ``t−1`` to its displacement, in
pixels of the working-size image, ``(dx, dy)``):

- with a mask: the object region ``O`` is the mask of ``t−1`` (the flow lives on ``t−1``'s
  pixel grid), or the mask of ``t`` when ``t−1`` has none; the background ``B`` is every other
  pixel (DAVIS "void" 255 excluded). Camera motion is the per-component median background
  vector ``b = median_B(flow)`` (zero when ``B`` is empty) and the score is the median over
  ``O`` of ``|flow − b|``: how fast the object moves against its surroundings, so a pan that
  carries object and background together scores ≈ 0;
- without a mask for ``t−1`` nor ``t`` (``masks`` not given, or ``None`` for both frames): the
  plain mean flow magnitude over the whole image;
- ``NaN`` ("not a candidate") for frame 0, which has no predecessor, and for a frame whose
  masks (of ``t−1`` and ``t``) are given but contain no object.

A mask is a ``bool`` array ``(H, W)`` (``True`` = object), a ``uint8`` id map ``(H, W)``
(0 = background, 1..254 = objects, all of them form the object region, 255 = void), or the
path of a mask PNG (read with :func:`samic_vos.data.mask_io.read_mask`).

Scores are cached per video (:func:`cached_motion_scores`) in
``$SAMIC_VOS_HOME/cache/flow`` (default ``~/.cache/samic-vos/cache/flow``), keyed by the
video's and masks' file names, sizes and modification times and by the flow config.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from samic_vos.data.mask_io import VOID_ID, read_mask
from samic_vos.runtime.atomic import atomic_path
from samic_vos.runtime.config import require, require_choice
from samic_vos.runtime.errors import UserError, size_text
from samic_vos.runtime.home import samic_home

Frame = np.ndarray | str | os.PathLike  # RGB uint8 (H, W, 3) or an image path
Mask = np.ndarray | str | os.PathLike | None  # bool / uint8 id map (H, W), a PNG path, None

# Bump when the score formula changes: old cache entries are then never reused.
SCORE_VERSION = 1

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """Settings of the flow computation and of the dynamic-frame selection."""

    method: Literal["dis", "farneback"] = "dis"
    # DIS preset: OpenCV's "medium" (the most accurate of its three presets).
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    # Long side (pixels) of the grayscale frames the flow is computed on; scores are in these
    # pixels. 320 px picks frames as dynamic as full-resolution flow does at ~1/6 of the
    # time (BENCHMARKS.md, "Dynamic-frame selection").
    working_size: int = 320
    # Frames kept per video: 10 of DAVIS's 25–104 frames is about the paper's 20%.
    top_k: int = 10
    # Two picks are at least this many frames apart, so picks spread over the video
    # rather than cluster in one burst of motion (1 = only distinct frames).
    min_gap: int = 3

    def __post_init__(self) -> None:
        require_choice("method", self.method, ("dis", "farneback"))
        require_choice("dis_preset", self.dis_preset, _DIS_PRESETS)
        require(self.working_size >= 16, "working_size", "an integer >= 16", self.working_size)
        require(self.top_k >= 0, "top_k", "an integer >= 0", self.top_k)
        require(self.min_gap >= 1, "min_gap", "an integer >= 1", self.min_gap)


def _gray(frame: Frame) -> np.ndarray:
    """A frame (RGB array or image path) as a ``uint8`` grayscale array ``(H, W)``."""
    if isinstance(frame, (str, os.PathLike)):
        bgr = cv2.imread(os.fspath(frame), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UserError(f"{frame}: cannot read the image (missing or not an image file)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)  # the same gray as an RGB array gives
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"a frame is an RGB array of shape (H, W, 3), got {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"a frame is a uint8 array, got {array.dtype}")
    return cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)


def working_shape(height: int, width: int, working_size: int) -> tuple[int, int]:
    """``(h, w)`` of an ``(height, width)`` image scaled so its long side is ``working_size``.

    Images whose long side is already at most ``working_size`` keep their size.
    """
    scale = min(1.0, working_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


Region = tuple[np.ndarray, np.ndarray]  # (object, valid) bool maps (h, w) at working size


def _object_region(
    mask: Mask, shape: tuple[int, int], size: tuple[int, int], index: int
) -> Region | None:
    """``(object, valid)`` bool maps at working shape ``size`` of frame ``index``'s mask.

    ``shape`` is the frame's ``(H, W)``; ``valid`` excludes void pixels. ``None`` for ``None``.
    """
    if mask is None:
        return None
    name = f"{mask}" if isinstance(mask, (str, os.PathLike)) else f"the mask of frame {index}"
    if isinstance(mask, (str, os.PathLike)):
        mask = read_mask(mask)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise UserError(
            f"{name}: size {size_text(mask.shape)} differs from its frame's "
            f"{size_text(shape)}; masks must have the frame's width and height"
        )
    ids = mask.astype(np.uint8)  # bool → 0/1
    small = cv2.resize(ids, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    valid = small != VOID_ID
    return (small > 0) & valid, valid


def compute_flow(prev: np.ndarray, curr: np.ndarray, config: FlowConfig) -> np.ndarray:
    """Dense flow from grayscale ``prev`` to ``curr`` (both ``uint8`` ``(h, w)``).

    Returns ``float32`` ``(h, w, 2)``: ``(dx, dy)`` in pixels, so the content of ``prev`` at
    ``(x, y)`` is found in ``curr`` at ``(x + dx, y + dy)``.
    """
    if config.method == "farneback":
        # OpenCV's sample settings: 3-level pyramid at scale 0.5, 15 px window, 3 iterations.
        return cv2.calcOpticalFlowFarneback(prev, curr, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[config.dis_preset])
    return dis.calc(prev, curr, None)


def motion_score(flow: np.ndarray, region: Region | None) -> float:
    """Motion score of one flow field ``(h, w, 2)`` (module docstring gives the formula).

    ``region`` is ``(object, valid)`` bool maps ``(h, w)``, or ``None`` for the plain mean
    flow magnitude. Returns ``NaN`` when the object region is empty.
    """
    if region is None:
        return float(np.linalg.norm(flow, axis=2).mean())
    obj, valid = region
    if not obj.any():
        return float("nan")
    background = valid & ~obj
    camera = np.median(flow[background], axis=0) if background.any() else np.zeros(2)
    return float(np.median(np.linalg.norm(flow[obj] - camera, axis=1)))


_MISSING = object()


def _pick_region(prev: Region | None, curr: Region | None) -> Region | None:
    """The region scoring frame t: t−1's if it holds the object, else t's, else the empty one."""
    known = [r for r in (prev, curr) if r is not None]
    with_object = [r for r in known if r[0].any()]
    return (with_object or known or [None])[0]


def motion_scores(
    frames: Iterable[Frame],
    masks: Iterable[Mask] | None = None,
    config: FlowConfig | None = None,
) -> np.ndarray:
    """Motion score of every frame: ``float64`` array ``(T,)``, ``NaN`` for frame 0.

    ``frames`` (RGB ``uint8`` ``(H, W, 3)`` arrays or image paths) and ``masks`` (one per
    frame, see the module docstring; ``None`` entries allowed) are streamed: only two frames
    are held at a time. Scores are in pixels of the working-size image.
    """
    config = config or FlowConfig()
    mask_iter: Iterator[Mask] | None = iter(masks) if masks is not None else None
    scores: list[float] = []
    prev_gray = prev_region = None
    prev_shape: tuple[int, int] | None = None
    for index, frame in enumerate(frames):
        gray = _gray(frame)
        shape = gray.shape
        size = working_shape(shape[0], shape[1], config.working_size)
        small = cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        region = None
        if mask_iter is not None:
            mask = next(mask_iter, _MISSING)
            if mask is _MISSING:
                raise UserError(f"fewer masks than frames (no mask for frame {index})")
            region = _object_region(mask, shape, size, index)
        if prev_gray is None:
            scores.append(float("nan"))
        else:
            if shape != prev_shape:
                raise UserError(
                    f"frame {index} has size {size_text(shape)} but frame {index - 1} "
                    f"has {size_text(prev_shape)}: all frames of a video share one size"
                )
            flow = compute_flow(prev_gray, small, config)
            scores.append(motion_score(flow, _pick_region(prev_region, region)))
        prev_gray, prev_region, prev_shape = small, region, shape
    return np.asarray(scores, dtype=np.float64)


def select_dynamic_frames(scores: np.ndarray, top_k: int, min_gap: int) -> list[int]:
    """Indices of the ``top_k`` most dynamic frames, sorted ascending.

    Greedy: frames are visited by decreasing score (ties: earlier frame first) and kept unless
    a kept frame lies fewer than ``min_gap`` frames away. Frame 0 (no predecessor) and ``NaN``
    scores are never picked, so fewer than ``top_k`` indices come back for short videos.
    """
    if top_k < 0 or min_gap < 1:
        raise UserError(f"top_k must be >= 0 and min_gap >= 1 (got {top_k}, {min_gap})")
    scores = np.asarray(scores, dtype=np.float64)
    candidates = [i for i in range(1, len(scores)) if np.isfinite(scores[i])]
    candidates.sort(key=lambda i: (-scores[i], i))
    picks: list[int] = []
    for i in candidates:
        if len(picks) == top_k:
            break
        if all(abs(i - p) >= min_gap for p in picks):
            picks.append(i)
    return sorted(picks)


def default_cache_dir() -> Path:
    """``$SAMIC_VOS_HOME/cache/flow``, else ``<user cache>/samic-vos/cache/flow``.

    The user cache is ``$XDG_CACHE_HOME`` when set to an absolute path, else ``~/.cache``
    (as for the weights cache, :func:`samic_vos.hub.weights.cache_dir`).
    """
    return samic_home() / "cache" / "flow"


def _fingerprint(path: str | os.PathLike) -> list:
    """Name, size and mtime of a file, or of every file in a folder (sorted)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found (the video or mask folder of the flow cache key)")
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def cached_motion_scores(
    video_key: str | os.PathLike,
    frames: Iterable[Frame],
    masks: Iterable[Mask] | None = None,
    config: FlowConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    mask_key: str | os.PathLike | None = None,
) -> np.ndarray:
    """:func:`motion_scores`, cached per video in ``cache_dir`` (:func:`default_cache_dir`).

    ``video_key`` is the frames' folder (or video file) and ``mask_key`` the masks' folder
    (required when ``masks`` is given): the cache entry is keyed by their absolute paths, the
    names, sizes and mtimes of their files, the flow settings (method, preset, working size)
    and :data:`SCORE_VERSION`, so editing a frame or mask recomputes. ``frames`` and ``masks``
    are not read on a cache hit.
    """
    config = config or FlowConfig()
    if masks is not None and mask_key is None:
        raise ValueError("cached_motion_scores: pass mask_key (the masks' folder) with masks")
    key = {
        "score_version": SCORE_VERSION,
        "video": [str(Path(video_key).resolve()), _fingerprint(video_key)],
        "masks": None if masks is None else [str(Path(mask_key).resolve()), _fingerprint(mask_key)],
        # Only the fields that change the scores: another top_k or min_gap reuses the entry.
        "flow": [config.method, config.dis_preset, config.working_size],
    }
    key_json = json.dumps(key, sort_keys=True)
    digest = hashlib.sha256(key_json.encode()).hexdigest()[:20]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = folder / f"{Path(video_key).name}-{digest}.npz"
    if entry.is_file():
        # A damaged (cut: BadZipFile; empty: EOFError) or foreign entry is recomputed and
        # overwritten.
        damaged = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
        with contextlib.suppress(*damaged), np.load(entry) as data:
            if str(data["key"]) == key_json:
                return data["scores"].astype(np.float64)
    scores = motion_scores(frames, masks, config)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(entry) as tmp:
        np.savez(tmp, scores=scores, key=np.array(key_json))
    return scores
