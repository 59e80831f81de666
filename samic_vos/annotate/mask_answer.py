"""The mask in SAMBOX's answers: the whole composed id map as a palette PNG, or, for a page
that holds the previous answer's mask, only the box of pixels that changed.

At 1080p with 40 objects the whole mask is a large PNG to encode, send, decode and draw on
every click, while a click changes one object; the page names the mask it holds (its
``mask_token``) and gets the changed box (``mask_patch``), which it draws over its own copy.
A page that holds another mask (another tab, a lost answer, a restarted server: tokens are
random) gets the whole mask (``mask_png``).
"""

from __future__ import annotations

import base64
import io
import secrets
from typing import Any

import numpy as np

from samic_vos.data.mask_io import PNG_COMPRESS_LEVEL, mask_image


def display_png(ids: np.ndarray) -> bytes:
    """The id map (H, W) uint8 as a palette PNG whose background (0) is transparent: the
    overlay the page draws (decoded, the same ids as the saved mask)."""
    buffer = io.BytesIO()
    mask_image(ids).save(buffer, format="PNG", transparency=0, compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def changed_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int] | None:
    """The smallest box (x0, y0, x1, y1), ends excluded, holding every pixel where the id maps
    (H, W) ``before`` and ``after`` differ; ``None`` where none does."""
    differ = before != after
    rows, cols = np.flatnonzero(differ.any(axis=1)), np.flatnonzero(differ.any(axis=0))
    if len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_fields(
    ids: np.ndarray, shown: tuple[str, np.ndarray] | None, held: str | None
) -> tuple[dict[str, Any], tuple[str, np.ndarray]]:
    """The answer's mask fields for the id map (H, W) uint8 ``ids``, and what is shown after.

    ``shown``: the (token, id map) last answered for this image; ``held``: the token of the
    mask the page holds (``None``: none). When they match, ``{"mask_patch": {"box": [x0, y0,
    x1, y1] | None, "png": base64 palette PNG of ``ids[y0:y1, x0:x1]`` | None}}`` (the page
    replaces that box of its mask; ``None``: nothing changed), else ``{"mask_png": base64
    palette PNG of ``ids``}``; with ``"mask_token"``, a new random token naming ``ids``."""
    token = secrets.token_hex(8)
    if shown is not None and held is not None and shown[0] == held and shown[1].shape == ids.shape:
        box = changed_box(shown[1], ids)
        png = None
        if box is not None:
            x0, y0, x1, y1 = box
            png = base64.b64encode(display_png(ids[y0:y1, x0:x1])).decode("ascii")
        fields: dict[str, Any] = {"mask_patch": {"box": box and list(box), "png": png}}
    else:
        fields = {"mask_png": base64.b64encode(display_png(ids)).decode("ascii")}
    return {**fields, "mask_token": token}, (token, ids)
