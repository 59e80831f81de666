"""Mask input/output: any mask PNG → an id map; id maps → DAVIS palette PNGs.

An *id map* is a ``uint8`` array of shape ``(H, W)`` (row, column): 0 is background,
1..K are objects, 255 is "void" (DAVIS-2017 unlabelled border pixels).

Accepted inputs:
- indexed palette PNGs (mode ``P``, DAVIS-2017 and our own outputs): the indices are the ids;
- binary grayscale PNGs (mode ``L``/``I;16``/``I``) with values 0/255 (the original DAVIS-2016
  format), 0/1 or 0/65535 (16-bit): one object, id 1. Other grayscale masks are refused (ids
  without a palette are ambiguous with soft masks);
- 1-bit PNGs (mode ``1``): 0/1.

Colour (RGB/RGBA) masks are refused: the mapping from colours to ids is ambiguous. Masks are
read with Pillow; OpenCV would expand a palette to colours.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samic_vos.runtime.atomic import atomic_path
from samic_vos.runtime.errors import UserError

if TYPE_CHECKING:  # Pillow is imported where an image is opened or made: `eval davis` reads
    from PIL import Image  # its masks without it (samic_vos.data.indexed_png)

VOID_ID = 255
# zlib level of the PNGs we write (masks; images sent to the SAMBOX page): 1 is 3-5x faster
# than Pillow's default 6 on masks, for files under twice as large (a few KB to tens of KB).
PNG_COMPRESS_LEVEL = 1


def davis_palette() -> np.ndarray:
    """The DAVIS (PASCAL-VOC) palette: ``uint8`` array of shape ``(256, 3)``, RGB.

    Colour of index ``i``: the bits of ``i`` are spread, three at a time, from the most
    significant bit of each channel downwards (bit 0 → red, bit 1 → green, bit 2 → blue).
    Index 1 is (128, 0, 0), 2 is (0, 128, 0), 255 is (224, 224, 192).
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


DAVIS_PALETTE: np.ndarray = davis_palette()


def object_ids(ids: np.ndarray) -> list[int]:
    """The object ids present in an id map: every value but 0 and :data:`VOID_ID`, ascending."""
    return [int(v) for v in np.unique(ids) if v not in (0, VOID_ID)]


def binary_mask_hint(masks: list[np.ndarray]) -> str:
    """What a message on id maps without an object adds where they hold void (255) pixels,
    as a 0/255 binary mask given as an array does (there, 255 is void): how to pass it;
    ``""`` without void."""
    if any(np.any(mask == VOID_ID) for mask in masks):
        return f"; a 0/{VOID_ID} binary mask: pass mask > 0"
    return ""


def ids_from_values(array: np.ndarray, where: str) -> np.ndarray:
    """An id map's values as ``uint8``: bool (``True``: object 1), or whole numbers
    0..:data:`VOID_ID` of any integer or float dtype, kept as they are; ``where`` names the
    array in messages.

    Raises :class:`UserError` for other dtypes and other values (never an id that wraps
    around, 300 → 44 or −1 → 255 void, nor a fraction cut, 1.7 → 1).
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind not in "iuf":
        raise UserError(
            f"{where}: expected an (H, W) id map of integers, got {tuple(array.shape)} "
            f"{array.dtype}"
        )
    values = np.unique(array)
    wrong = values[(values < 0) | (values > VOID_ID) | (values != np.round(values))]
    if len(wrong):
        shown = ", ".join(f"{v:g}" for v in wrong[:3].tolist())
        raise UserError(
            f"{where}: ids must be whole numbers 0..{VOID_ID} (0 background, {VOID_ID} "
            f"void, 1..{VOID_ID - 1} objects), got {shown}"
        )
    return array.astype(np.uint8)


def ids_from_image(image: Image.Image, name: str = "mask") -> np.ndarray:
    """Convert an opened mask image to an id map (``uint8``, shape ``(H, W)``).

    Raises :class:`UserError` (naming ``name``) for colour images and out-of-range values.
    """
    mode = image.mode
    if mode == "P":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode == "1":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode in ("L", "I", "I;16", "I;16B", "I;16L"):
        values = np.asarray(image)
        present = set(np.unique(values).tolist())
        if present <= {0, 255} or present <= {0, 1} or present <= {0, 65535}:
            # Binary grayscale, e.g. the original DAVIS-2016 format (0/255): one object.
            return (values > 0).astype(np.uint8)
        raise UserError(
            f"{name}: grayscale mask with {len(present)} distinct values; a grayscale mask must be "
            "binary (0/255, 0/1 or 16-bit 0/65535). Save object ids as an indexed (palette) PNG, "
            "or threshold a soft mask first"
        )
    if mode in ("LA", "La"):  # e.g. GIMP's "grayscale with alpha"
        raise UserError(
            f"{name}: is a grayscale image with transparency ({mode}); save it without "
            "transparency, as a grayscale PNG (0/255) or an indexed palette PNG"
        )
    raise UserError(
        f"{name}: is a colour ({mode}) image; masks must be indexed palette PNGs "
        "(0 = background, 1..K = objects) or grayscale PNGs"
    )


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a mask PNG into an id map (``uint8``, shape ``(H, W)``).

    Raises :class:`UserError` for a missing/undecodable file or a colour image.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: mask file not found")
    try:
        with Image.open(path) as image:
            image.load()
            return ids_from_image(image, str(path))
    except UserError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: cannot decode the mask image ({err})") from err


def mask_image(ids: np.ndarray) -> Image.Image:
    """An indexed (mode ``P``) Pillow image of ``ids`` with the DAVIS palette."""
    from PIL import Image

    if ids.ndim != 2:
        raise ValueError(f"an id map has shape (H, W), got {ids.shape}")
    height, width = ids.shape
    image = Image.frombytes(
        "P", (width, height), np.ascontiguousarray(ids, dtype=np.uint8).tobytes()
    )
    image.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
    return image


def write_mask(path: str | os.PathLike[str], ids: np.ndarray) -> None:
    """Write ``ids`` (``(H, W)``, ``uint8``; bool or whole numbers 0..255 of another dtype are
    converted, :func:`ids_from_values`) as a DAVIS palette PNG, atomically.

    Raises :class:`UserError` for other values (``ids > 255``, negative, fractions).
    """
    image = mask_image(ids_from_values(np.asarray(ids), "`ids`"))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
