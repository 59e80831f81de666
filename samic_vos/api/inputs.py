"""The images and masks a caller hands to :class:`~samic_vos.api.video.VideoTracker` and
:class:`~samic_vos.api.images.ImageSegmenter`, checked where they come in.

An image is an (H, W, 3) uint8 RGB array (a numpy array, a CPU tensor, anything
``np.asarray`` reads as one) or a Pillow image (converted to RGB, as
:func:`~samic_vos.data.davis.read_image` converts a file). A mask is an (H, W) id map: bool
(``True``: object 1), or integers 0..255 of any dtype (floats too, when whole numbers): 0
background, 255 void, 1..254 objects or classes; a Pillow image is read as
:func:`~samic_vos.data.mask_io.read_mask` reads a file (a palette's indices; 0/255 or 0/1
grayscale: object 1). Anything else is a one-line :class:`~samic_vos.runtime.errors.UserError`
naming the argument, before any work is done (never a wrap-around of ids above 255, never an
error from deep inside SAM).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

from samic_vos.data.mask_io import ids_from_image, ids_from_values
from samic_vos.runtime.errors import UserError, size_text


def is_path(value: object) -> bool:
    """Whether ``value`` names a file (``str`` or ``os.PathLike``) rather than holding pixels."""
    return isinstance(value, (str, os.PathLike))


def rgb_array(value: object, where: str, *, paths: str) -> np.ndarray:
    """``value`` as an (H, W, 3) uint8 RGB array; ``where`` names it in messages (```frame```);
    ``paths``: what to say to a path (where this argument takes none)."""
    if is_path(value):
        raise UserError(f"{where} is a path ({value}); {paths}")
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGB"), dtype=np.uint8)
    array = _as_array(value, where, "an (H, W, 3) uint8 RGB image")
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        hint = ""
        if array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3:
            hint = " (channels last: (H, W, 3), not (3, H, W))"
        elif array.dtype.kind == "f":
            hint = _float_hint(array)
        raise UserError(
            f"{where}: expected an (H, W, 3) uint8 RGB image, got {_shown(array)}{hint}"
        )
    if not array.size:
        raise UserError(f"{where}: the image is empty, {size_text(array.shape)}")
    return array


def ids_array(value: object, where: str, *, paths: str) -> np.ndarray:
    """``value`` as an (H, W) uint8 id map (module docstring); ``where`` names it in messages,
    ``paths``: what to say to a path (where this argument takes none)."""
    if is_path(value):
        raise UserError(f"{where} is a path ({value}); {paths}")
    if isinstance(value, Image.Image):
        return ids_from_image(value, where)
    array = _as_array(value, where, "an (H, W) id map")
    if array.ndim != 2:
        raise UserError(f"{where}: expected an (H, W) id map, got {_shown(array)}")
    return ids_from_values(array, where)


def points_array(value: object, where: str, size: tuple[int, int]) -> np.ndarray:
    """``value`` as (N, 2) float32 (x, y) points of an image of ``size`` (H, W): each inside
    it (0 <= x <= W - 1, 0 <= y <= H - 1, as a SAMBOX file's must be), or none (a class whose
    points are derived from its mask); ``where`` names them."""
    array = _as_array(value, where, "(N, 2) (x, y) points")
    if array.size == 0:  # none clicked: derived from the mask
        return np.zeros((0, 2), np.float32)
    if array.ndim != 2 or array.shape[1] != 2 or array.dtype.kind not in "iuf":
        raise UserError(f"{where}: expected (N, 2) (x, y) points, got {_shown(array)}")
    if not np.isfinite(array).all():
        raise UserError(f"{where}: expected (N, 2) (x, y) points, got a point that is not finite")
    height, width = size
    outside = (array < 0).any(axis=1) | (array[:, 0] > width - 1) | (array[:, 1] > height - 1)
    if outside.any():
        x, y = array[np.flatnonzero(outside)[0]].tolist()
        raise UserError(
            f"{where}: [{x:g}, {y:g}] lies outside the {width}x{height} image (x in "
            f"[0, {width - 1}], y in [0, {height - 1}]; points are (x, y), not (row, col))"
        )
    return array.astype(np.float32)


def require_type(name: str, value: object, kind: Any, make: str) -> None:
    """One :class:`UserError` line where ``value`` is not a ``kind`` (what ``make`` builds)."""
    if not isinstance(value, kind):
        raise UserError(f"`{name}`: expected {make}, got a {type(value).__name__}")


def _as_array(value: object, where: str, expected: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:  # a CUDA tensor, a ragged list
        raise UserError(
            f"{where}: expected {expected}, got a {type(value).__name__} numpy cannot read "
            f"({str(error).splitlines()[0]})"
        ) from None


def _float_hint(array: np.ndarray) -> str:
    """How to make a float image uint8: its values in 0..1 (torchvision's), or in 0..255."""
    if array.size and np.nanmax(array) > 1:
        return " (floats in 0..255: x.round().astype(np.uint8))"
    return " (floats in 0..1: (x * 255).round().astype(np.uint8))"


def _shown(array: np.ndarray) -> str:
    """How messages show an array: its shape and dtype."""
    return f"{tuple(array.shape)} {array.dtype}"
