"""Overlay rendering: masks (and prompt points) drawn over frames, written as an H.264 video.

Colours are the DAVIS palette colours of the object ids
(:data:`samic_vos.data.mask_io.DAVIS_PALETTE`; id 1 red (128, 0, 0), id 2 green (0, 128, 0), ...).
Background (0) and void (255) are not coloured. Per object pixel the output is ``round((1 - alpha) *
rgb + alpha * colour)``; the outline, ``outline`` pixels wide on the inner side of the object's
border (against the background or another object, not the image edge), is the palette colour itself
at full opacity, so it stands out from the blended interior. Prompt points are filled discs of the
object's colour with a 1 px border in white or black, whichever contrasts more with the colour.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samic_vos.data.frame_source import FrameSource
from samic_vos.data.mask_io import DAVIS_PALETTE, VOID_ID, read_mask
from samic_vos.data.names import BACKENDS
from samic_vos.runtime.config import require, require_choice
from samic_vos.runtime.errors import UserError, size_text

# Prompt points are drawn as discs of this radius in pixels (plus a 1 px contrasting border).
POINT_RADIUS = 4


@dataclass
class OverlayConfig:
    """How objects are drawn over frames (key ``overlay:`` of the track and render jobs)."""

    alpha: float = 0.5  # weight of the object colours
    outline: int = 2  # outline width in pixels (0: none)

    def __post_init__(self) -> None:
        require(0.0 <= self.alpha <= 1.0, "alpha", "in [0, 1]", self.alpha)
        require(self.outline >= 0, "outline", "an integer >= 0 (pixels)", self.outline)


@dataclass
class RenderConfig:
    """Everything `samic-vos render` can be told (defaults; YAML and flags override)."""

    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    backend: str = "auto"  # frame decoding: auto | decord | pyav | folder
    fps: float | None = None  # frame rate of the output (None: the video's, or 24 for folders)

    def __post_init__(self) -> None:
        require_choice("backend", self.backend, BACKENDS)
        require(self.fps is None or self.fps > 0, "fps", "a number > 0 or null", self.fps)


def overlay(
    rgb: np.ndarray,
    ids: np.ndarray,
    alpha: float = 0.5,
    outline: int = 2,
    points: dict[int, np.ndarray] | None = None,
    point_radius: int = POINT_RADIUS,
) -> np.ndarray:
    """Draw the objects of an id map over a frame.

    ``rgb``: ``uint8`` ``(H, W, 3)``; ``ids``: ``uint8`` ``(H, W)`` (0 background, 255 void,
    others object ids); ``alpha`` in [0, 1] is the weight of the object colour; ``outline`` the
    outline width in pixels (0: none); ``points`` maps object ids to ``(N, 2)`` arrays of
    ``(x, y)`` pixel coordinates (x = column, y = row). Returns a new ``uint8`` ``(H, W, 3)``.
    """
    import cv2

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if ids.shape != rgb.shape[:2]:
        raise ValueError(f"ids {ids.shape} and rgb {rgb.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    objects = (ids != 0) & (ids != VOID_ID)
    out = rgb.copy()
    # Flat indices of object pixels: several times faster than boolean indexing of (H, W, 3).
    pixels = np.flatnonzero(objects)
    flat_out, flat_ids = out.reshape(-1, 3), ids.reshape(-1)
    colours = np.take(DAVIS_PALETTE, flat_ids[pixels], axis=0)
    blend = (1.0 - alpha) * flat_out[pixels].astype(np.float32) + alpha * colours
    flat_out[pixels] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    if outline > 0:
        # A pixel is on a border when its neighbourhood holds more than one id.
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * outline + 1, 2 * outline + 1))
        border = cv2.dilate(ids, kernel) != cv2.erode(ids, kernel)
        edge = np.flatnonzero(border & objects)
        flat_out[edge] = np.take(DAVIS_PALETTE, flat_ids[edge], axis=0)
    for obj_id, xy in (points or {}).items():
        colour = DAVIS_PALETTE[obj_id]
        luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        rim = (255, 255, 255) if luminance < 128 else (0, 0, 0)
        for x, y in np.rint(np.asarray(xy, dtype=np.float64).reshape(-1, 2)).astype(int):
            cv2.circle(out, (int(x), int(y)), point_radius + 1, rim, thickness=-1)
            cv2.circle(out, (int(x), int(y)), point_radius, colour.tolist(), thickness=-1)
    return out


def read_prompt_points(path: str | os.PathLike[str]) -> dict[str, dict[int, np.ndarray]]:
    """Read a tracker's ``prompts.jsonl``: frame name → object id → ``(N, 2)`` float ``(x, y)``.

    One JSON object per line: ``{"frame": "00000", "objects": {"1": {"points": [[x, y], ...],
    "scores": [...], "confidence": 0.93}, ...}}``. Only the points are used. Blank lines are
    skipped. Raises :class:`UserError` naming the line for anything else (a binary file, a file
    cut short in its last line, a line that is not such a record).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: prompts file not found; pass the prompts.jsonl of a track run")
    expected = 'expected {"frame": "00000", "objects": {"1": {"points": [[x, y], ...]}}}'
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path}: not a text file (byte {err.start} is not UTF-8); pass the prompts.jsonl "
            "of a track run"
        ) from err
    frames: dict[str, dict[int, np.ndarray]] = {}
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines) and not line.endswith("\n"):
                raise UserError(
                    f"{where}: the last line is cut short ({err.msg}): the file is truncated; "
                    "pass the whole prompts.jsonl of a track run"
                ) from err
            raise UserError(f"{where}: not valid JSON ({err.msg}); {expected}") from err
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("frame"), str)
            or not isinstance(record.get("objects"), dict)
        ):
            raise UserError(f"{where}: {expected}")
        frames[record["frame"]] = {
            _object_id(key, where): _points(value, where, expected)
            for key, value in record["objects"].items()
        }
    return frames


def _object_id(key: str, where: str) -> int:
    if not key.isdigit() or not 0 < int(key) < VOID_ID:
        raise UserError(f"{where}: object id '{key}' is not an integer in 1..254")
    return int(key)


def _points(value: object, where: str, expected: str) -> np.ndarray:
    points = value.get("points") if isinstance(value, dict) else None
    try:
        xy = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        xy = None
    if points is None or xy is None or not (xy.size == 0 or (xy.ndim == 2 and xy.shape[1] == 2)):
        raise UserError(f"{where}: points must be a list of [x, y] pairs; {expected}")
    return xy.reshape(-1, 2)


def check_points(
    points: dict[str, dict[int, np.ndarray]], frames: FrameSource, points_path: Path
) -> None:
    """UserError unless every frame of ``points`` is a frame of ``frames`` and inside its size.

    Points are pixel coordinates ``(x, y)`` (x = column, y = row), pixel centres at integers:
    a point of this video lies within ``[0, W - 1] x [0, H - 1]``, half a pixel of rounding
    allowed.
    """
    unknown = sorted(set(points) - set(frames.names))
    if unknown:
        raise UserError(
            f"{points_path}: frame '{unknown[0]}' is not a frame of {frames.path} "
            f"({len(unknown)} unknown frames); pass the prompts.jsonl of this video's track run"
        )
    height, width = frames.size
    for name, objects in points.items():
        for xy in objects.values():
            outside = (xy < -0.5).any(axis=1) | (xy[:, 0] > width - 0.5) | (xy[:, 1] > height - 0.5)
            if outside.any():
                x, y = xy[np.flatnonzero(outside)[0]]
                raise UserError(
                    f"{points_path}: frame '{name}' has the point ({x:g}, {y:g}), outside the "
                    f"{width}x{height} frames of {frames.path}; pass the prompts.jsonl of this "
                    "video's track run"
                )


def check_masks(masks_dir: Path, names: list[str], size: tuple[int, int] | None = None) -> None:
    """UserError unless ``masks_dir`` holds exactly one ``<name>.png`` per frame name, each of
    ``size`` ``(H, W)`` when given (read from the PNG headers alone).

    A frame without a mask is an error, not a blank frame: a mask folder that does not match
    the video frame for frame was most likely made from another video (or cut short).
    """
    if not masks_dir.is_dir():
        raise UserError(
            f"{masks_dir}: mask folder not found; pass the masks/ folder written by "
            "`samic-vos track` (one <frame>.png per frame)"
        )
    expected = set(names)
    present = {
        p.stem
        for p in masks_dir.iterdir()
        if p.suffix.lower() == ".png" and not p.name.startswith(".")  # skip temporary files
    }
    missing = [name for name in names if name not in present]
    extra = sorted(present - expected)
    if missing:
        raise UserError(
            f"{masks_dir / (missing[0] + '.png')}: mask not found ({len(missing)} of "
            f"{len(names)} frames have no mask); the folder needs one <frame name>.png per frame"
        )
    if extra:
        raise UserError(
            f"{masks_dir / (extra[0] + '.png')}: no frame named '{extra[0]}' in the video "
            f"({len(extra)} masks without a frame); are the masks from another video?"
        )
    if size is not None:
        for name in names:
            _check_mask_size(masks_dir / f"{name}.png", name, size)


def _check_mask_size(path: Path, name: str, size: tuple[int, int]) -> None:
    """UserError unless the mask ``path`` of frame ``name`` is ``size`` ``(H, W)``; a file that
    is no image is left to :func:`read_mask`, which names the reason when it reads it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
        return
    if (height, width) != tuple(size):
        raise UserError(
            f"{path}: mask is {size_text((height, width))} but frame '{name}' is "
            f"{size_text(size)}; masks must have the frames' size"
        )


def render_video(
    frames: FrameSource,
    masks_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    alpha: float = 0.5,
    outline: int = 2,
    points_jsonl: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> int:
    """Write an overlay video of ``frames`` with the masks ``masks_dir/<frame name>.png``.

    Everything is checked before encoding starts (the output path first, each mask's size
    from its header) except each mask's content, checked as it is read; on any error nothing is
    left at ``out_path``.
    Returns the frame count.
    """
    from samic_vos.data.video_writer import VideoWriter
    from samic_vos.runtime.console import bar

    OverlayConfig(alpha=alpha, outline=outline)  # validates both
    writer = VideoWriter(out_path, frames.fps, frames.size)  # checks the path, opens nothing
    masks_dir = Path(masks_dir)
    names = frames.names
    check_masks(masks_dir, names, frames.size)
    points = {}
    if points_jsonl is not None:
        points = read_prompt_points(points_jsonl)
        check_points(points, frames, Path(points_jsonl))
    height, width = frames.size
    with writer:
        for frame in bar(
            frames, total=len(names), desc="render", unit="frame", disable=not progress
        ):
            mask_path = masks_dir / f"{frame.name}.png"
            ids = read_mask(mask_path)
            if ids.shape != (height, width):
                raise UserError(
                    f"{mask_path}: mask is {size_text(ids.shape)} but frame '{frame.name}' is "
                    f"{size_text((height, width))}; masks must have the frames' size"
                )
            writer.write(overlay(frame.rgb, ids, alpha, outline, points.get(frame.name)))
    return writer.frames_written
