"""DAVIS measures with the exact definitions of the official ``davis2017-evaluation`` toolkit.

Per frame and object:

- **J** (region similarity): ``|gt ∩ res| / |gt ∪ res|``, 1 when both masks are empty.
- **F** (boundary measure): F-measure of the 1-px boundary maps (:func:`boundary_map`), a
  boundary pixel counting as matched when a boundary pixel of the other mask lies within
  ``radius`` px (Euclidean, ``dy² + dx² <= radius²``; ``radius = ceil(0.008 · diagonal)``).

Per object over the scored frames (:func:`statistics`): Mean, Recall (share of frames > 0.5)
and Decay (mean of the first quarter of the frames minus mean of the last quarter).

The toolkit's numbers are reproduced, not its method: masks are cropped to the bounding box
of the object and the result before the boundary maps and the dilations are computed, which
gives the same pixels as the whole-image computation (see :func:`object_scores`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Boundary tolerance as a fraction of the image diagonal (the toolkit's ``bound_th``).
BOUNDARY_TOLERANCE = 0.008
# Pixels per packed word (pack_rows).
_WORD_BITS = 64


def boundary_radius(shape: tuple[int, int], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Boundary tolerance in pixels for an image of ``shape = (H, W)``.

    ``ceil(tolerance · sqrt(H² + W²))`` (8 px at 480p); a ``tolerance >= 1`` is already in
    pixels.
    """
    if tolerance >= 1:
        return int(tolerance)
    height, width = shape
    return math.ceil(tolerance * math.sqrt(height * height + width * width))


@lru_cache(maxsize=8)
def disk(radius: int) -> np.ndarray:
    """Structuring element ``dy² + dx² <= radius²``: ``uint8`` 0/1, shape ``(2r+1, 2r+1)``."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)


def pack_rows(image: np.ndarray, spare: int = 0) -> np.ndarray:
    """Each row of a bool ``(H, W)`` image as bits, followed by at least ``spare`` unset bits:
    ``uint64`` ``(H, ceil((W + spare) / 64))``, little endian; bit ``b`` of word ``w`` of row
    ``y`` is pixel ``(y, 64 * w + b)``."""
    height, width = image.shape
    packed = np.zeros((height, -(-(width + spare) // _WORD_BITS) * 8), np.uint8)
    packed[:, : -(-width // 8)] = np.packbits(image, axis=1, bitorder="little")
    return packed.view("<u8")


def _shifted(bits: np.ndarray, step: int) -> np.ndarray:
    """A 1-D ``uint64`` bit string (bit ``b`` of word ``w`` is bit ``64 * w + b``) with every
    bit moved ``step`` places up (``step > 0``) or down; bits moved past either end are
    dropped."""
    out = np.empty_like(bits)
    whole, part = divmod(abs(step), _WORD_BITS)
    count = max(bits.size - whole, 0)
    up, down = np.uint64(part), np.uint64(_WORD_BITS - part)
    if step > 0:
        out[: bits.size - count] = 0
        source = bits[:count]
        np.left_shift(source, up, out=out[whole:])
        if part and count > 1:
            out[whole + 1 :] |= source[:-1] >> down
    else:
        out[count:] = 0
        source = bits[whole:]
        np.right_shift(source, up, out=out[:count])
        if part and count > 1:
            out[: count - 1] |= source[1:] << down
    return out


def dilate(words: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by :func:`disk` ``(radius)`` of an image packed by :func:`pack_rows` with
    ``spare >= radius``; pixels outside the image count as background (as ``cv2.dilate``'s
    default border).

    ``words``: C-contiguous ``uint64`` ``(H, N)``. Returns the same layout: a pixel is set where
    a set pixel of the image lies within ``dy² + dx² <= radius²``; the spare bits may be set
    too, so AND the result with another image packed alike before counting. The disk is taken
    row by row: each of its rows is a horizontal run of half-width ``k``, so the result is the
    union over ``dy`` of the image dilated horizontally by the run of row ``dy`` and shifted by
    ``dy`` rows. The horizontal runs move the whole array as one bit string (64 pixels a machine
    word): a pixel moved past the end of its row lands in the spare bits of its own row or of
    the row before, never on a pixel.
    """
    half_widths = [int(k) for k in disk(radius).sum(axis=1) // 2]  # run half-width of each row
    run = words.reshape(-1)
    runs = {0: run}  # runs[k]: the image dilated horizontally by half-width k
    width = 0
    for k in sorted(set(half_widths)):
        while width < k:
            # Grow the run of half-width `width` by `step` on each side: its copies moved
            # ±step overlap it or touch it (step <= width + 1), so no offset is left out.
            step = min(k - width, width + 1)
            grown = _shifted(run, step)
            grown |= _shifted(run, -step)
            grown |= run
            run, width = grown, width + step
        runs[k] = run
    rows = {k: run.reshape(words.shape) for k, run in runs.items()}
    out = rows[half_widths[radius]].copy()
    for dy in range(1, radius + 1):
        run = rows[half_widths[radius + dy]]  # rows +dy and -dy have the same run
        out[:-dy] |= run[dy:]
        out[dy:] |= run[:-dy]
    return out


def count_bits(words: np.ndarray) -> int:
    """Set bits of a ``uint64`` array."""
    return int(np.count_nonzero(np.unpackbits(np.ascontiguousarray(words).view(np.uint8))))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """1-px boundary map of a binary mask, shifted half a pixel towards the origin.

    ``mask``: bool ``(H, W)``. Pixel ``(i, j)`` is a boundary pixel when it differs from its
    right, lower or lower-right neighbour; the last row compares with the right neighbour
    only, the last column with the lower neighbour only, and the last pixel is never a
    boundary pixel (the toolkit's ``_seg2bmap``). Returns bool ``(H, W)``.
    """
    bmap = np.zeros_like(mask, dtype=bool)
    bmap[:, :-1] = mask[:, :-1] ^ mask[:, 1:]
    bmap[:-1, :] |= mask[:-1, :] ^ mask[1:, :]
    bmap[:-1, :-1] |= mask[:-1, :-1] ^ mask[1:, 1:]
    return bmap


def _extent(line: np.ndarray) -> tuple[int, int] | None:
    """First and one-past-last index where a 1-D array is non-zero (``None``: nowhere)."""
    hits = np.flatnonzero(line)
    return (int(hits[0]), int(hits[-1]) + 1) if hits.size else None


def _box(labelled: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box of the non-zero pixels of ``(H, W)`` ``labelled``, grown by one pixel and
    clipped to the array (``None``: no such pixel).

    Boundary maps computed on such a box equal the whole array's: outside it the masks and
    their boundaries are empty, and a row or column of its edge that is not the array's is
    background, whose boundary pixels are the same whether its neighbours are seen or not.
    """
    rows = _extent(np.bitwise_or.reduce(labelled, axis=1))
    if rows is None:
        return None
    cols = _extent(np.bitwise_or.reduce(labelled, axis=0))
    assert cols is not None
    height, width = labelled.shape
    return (
        slice(max(rows[0] - 1, 0), min(rows[1] + 1, height)),
        slice(max(cols[0] - 1, 0), min(cols[1] + 1, width)),
    )


def _f_measure(matched_fg: int, n_fg: int, matched_gt: int, n_gt: int) -> float:
    """The toolkit's F from boundary pixel counts, with its conventions for empty boundaries."""
    if n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_fg == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = matched_fg / float(n_fg)
        recall = matched_gt / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def object_scores(gt: np.ndarray, res: np.ndarray, radius: int) -> tuple[float, float]:
    """J and F of one object in one frame.

    ``gt``, ``res``: bool ``(H, W)`` masks of the object in the ground truth and the result;
    ``radius``: boundary tolerance in pixels (:func:`boundary_radius`).

    Both boundary maps are computed on the box of ``gt | res`` (:func:`_box`). Dilation only
    matters at boundary pixels, and every boundary pixel lies in the box, so dilating the box
    alone (pixels outside it do not count, as with ``cv2.dilate``'s default border, see
    :func:`dilate`) gives the
    same matches as the toolkit's whole-image dilation.
    """
    union = gt | res
    box = _box(union)
    if box is None:
        return 1.0, 1.0  # both empty: J = 1 and both boundaries empty (F = 1)
    gt_crop, res_crop = gt[box], res[box]
    j = np.count_nonzero(gt_crop & res_crop) / np.count_nonzero(union[box])

    gt_boundary, res_boundary = boundary_map(gt_crop), boundary_map(res_crop)
    n_gt, n_res = np.count_nonzero(gt_boundary), np.count_nonzero(res_boundary)
    matched_res = matched_gt = 0
    if n_gt and n_res:
        # One dilation of both maps, one above the other `radius` blank rows apart (one tall
        # image costs less than two short ones).
        height = gt_boundary.shape[0]
        pair = np.zeros((2 * height + radius, gt_boundary.shape[1]), bool)
        pair[:height], pair[height + radius :] = gt_boundary, res_boundary
        packed = pack_rows(pair, spare=radius)
        near = dilate(packed, radius)
        matched_res = count_bits(packed[height + radius :] & near[:height])
        matched_gt = count_bits(packed[:height] & near[height + radius :])
    return float(j), _f_measure(matched_res, n_res, matched_gt, n_gt)


def frame_scores(
    gt_ids: np.ndarray, res_ids: np.ndarray, num_objects: int, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects ``1..num_objects`` in one frame.

    ``gt_ids``, ``res_ids``: ``uint8`` id maps ``(H, W)`` of the same shape. Ground-truth void
    (255) never equals an object id, so it counts as background, as in the toolkit's
    semi-supervised task. Returns two ``float64`` arrays of shape ``(num_objects,)``.
    """
    j = np.ones(num_objects)  # objects absent from both: J = F = 1
    f = np.ones(num_objects)
    box = _box(gt_ids | res_ids)
    if box is None:
        return j, f
    # Per-object masks of the box of all labelled pixels only: the same scores (see _box).
    gt_box, res_box = gt_ids[box], res_ids[box]
    for index in range(num_objects):
        object_id = index + 1
        j[index], f[index] = object_scores(gt_box == object_id, res_box == object_id, radius)
    return j, f


@dataclass(frozen=True)
class Statistics:
    """Mean, Recall (share of values > 0.5) and Decay of one object's per-frame values."""

    mean: float
    recall: float
    decay: float


def statistics(values: np.ndarray) -> Statistics:
    """Statistics of per-frame values (``float64``, shape ``(T,)``, T >= 1, in scored order).

    Decay splits the frames into four bins at ``round(linspace(1, T, 5)) - 1`` and subtracts
    the mean of the last bin from the mean of the first, as the toolkit does. Known toolkit
    bug, fixed here: it keeps these indices as ``uint8``, so on long sequences they wrap
    around: from T = 257 on (T = 256 under NumPy 2, where ``255 + 1`` wraps as well) its
    Decay is NaN or, on longer sequences, taken over the wrong frames. Here the indices are
    integers; for T <= 255 the numbers are the toolkit's.
    """
    values = np.asarray(values, dtype=np.float64)
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.int64)
    first = values[edges[0] : edges[1] + 1]
    last = values[edges[3] : edges[4] + 1]
    return Statistics(
        mean=float(np.mean(values)),
        recall=float(np.mean(values > 0.5)),
        decay=float(np.mean(first) - np.mean(last)),
    )
