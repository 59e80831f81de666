"""Fast reading of mask PNGs into id maps, with :func:`samic_vos.data.mask_io.read_mask` semantics.

Decoding a DAVIS mask with Pillow spends as long copying the pixels out of Pillow
(``np.asarray`` goes through ``tobytes``) as inflating them. Mask PNGs written by Pillow, the
DAVIS annotations and published results are 8-bit indexed, non-interlaced and unfiltered
(filter type 0 on every row): their pixels are the ids, so :func:`read_ids` inflates the
image data and views it as an array directly. Inflating is most of the remaining cost: it
uses the ``zlib-ng`` package when installed (about 20x faster on masks, whose long runs of
one id the stock zlib copies byte by byte), else :mod:`zlib`. Every other PNG (grayscale,
colour, other bit depths, interlaced, filtered rows, damaged files) goes through
:func:`~samic_vos.data.mask_io.read_mask`, so the result and the errors are the same either way.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from samic_vos.data.mask_io import read_mask

try:
    from zlib_ng import zlib_ng as zlib
except ImportError:  # optional accelerator; the stock zlib gives the same bytes
    import zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PALETTE = 3  # PNG colour type of indexed images


def _indexed_pixels(data: bytes) -> np.ndarray | None:
    """The ids of an 8-bit, unfiltered, non-interlaced indexed PNG; ``None`` for other PNGs."""
    if not data.startswith(_SIGNATURE):
        return None
    pos, header, chunks = len(_SIGNATURE), None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or len(header) != 13 or not chunks:
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour != _PALETTE or interlace != 0 or width == 0 or height == 0:
        return None
    try:
        # A decompression object grows its output in steps; zlib-ng's one-shot decompress
        # maps fresh memory for every image, paying page faults.
        raw = zlib.decompressobj().decompress(b"".join(chunks))
    except zlib.error:
        return None
    stride = width + 1  # each row starts with its filter-type byte
    if len(raw) != height * stride:
        return None
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride)
    if rows[:, 0].any():  # a filtered row: let Pillow undo the filters
        return None
    return rows[:, 1:].copy()


def read_ids(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a mask PNG into an id map (``uint8``, shape ``(H, W)``, row-major).

    Same values and errors as :func:`samic_vos.data.mask_io.read_mask` (palette indices are the
    ids; binary grayscale becomes 0/1; colour images raise :class:`UserError`), faster for
    unfiltered 8-bit indexed PNGs.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return read_mask(path)  # reports the missing or unreadable file
    ids = _indexed_pixels(data)
    return read_mask(path) if ids is None else ids
