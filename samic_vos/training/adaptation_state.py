"""The saved state of a first-frame adaptation, so that an interrupted one continues.

One ``torch.save`` file (loadable with ``weights_only=True``), written atomically
(:mod:`samic_vos.runtime.atomic`): a reader sees the previous complete state or the new one.
It holds:

- ``format`` (:data:`FORMAT`), ``format_version`` and ``fingerprint``: what the adaptation was
  started from (its config, the network config, a SHA-256 of frame 0 and its id map, or of
  each reference image and id map, the head's initial weights, the heat σ); a state is only
  continued by the same adaptation;
- ``head``, ``optimizer``, ``scheduler``: the state dicts after ``progress["step"]`` steps;
- ``numpy_rng`` (the batch sampler's generator state) and ``torch_rng`` (the CPU generator);
- ``best_head``: the head with the lowest validation loss so far;
- ``progress``: plain values (steps done, seconds spent in steps, best loss and step,
  validations without improvement, the loss curve, and ``stop``, the reason it ended, or
  ``None`` while it runs).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samic_vos.runtime.atomic import atomic_write_bytes
from samic_vos.runtime.errors import UserError

FORMAT = "samic-vos/adaptation-state"
FORMAT_VERSION = 1


def fingerprint(
    config: dict[str, Any],
    net_config: dict[str, Any],
    frames: list[tuple[np.ndarray, np.ndarray]],
    head_state: dict[str, torch.Tensor],
    heat_sigma: float,
) -> dict[str, Any]:
    """What identifies one adaptation: plain values (configs as dicts, hashes as hex).

    ``frames``: the (rgb, ids) images adapted on; one frame gives scalar hashes (as states
    saved by ``track`` always had), several give lists of them.
    """
    head = hashlib.sha256()
    for key in sorted(head_state):
        head.update(key.encode())
        head.update(head_state[key].detach().cpu().contiguous().numpy().tobytes())

    def sha(array: np.ndarray) -> str:
        return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()

    rgb_hashes = [sha(rgb) for rgb, _ in frames]
    shapes = [list(rgb.shape) for rgb, _ in frames]
    id_hashes = [sha(ids) for _, ids in frames]
    one = len(frames) == 1
    return {
        "config": config,
        "net_config": net_config,
        "frame_sha256": rgb_hashes[0] if one else rgb_hashes,
        "frame_shape": shapes[0] if one else shapes,
        "ids_sha256": id_hashes[0] if one else id_hashes,
        "head_sha256": head.hexdigest(),
        "heat_sigma": float(heat_sigma),
    }


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (the keys of the module docstring but ``format``) to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as err:
        reason = err.strerror or err
        raise UserError(f"{path}: cannot write the adaptation state ({reason})") from err


def load_state(path: str | os.PathLike[str], expected: dict[str, Any]) -> dict[str, Any] | None:
    """The state saved at ``path`` (``None`` if there is no file).

    Raises:
        UserError: the file is damaged, not an adaptation state, or one of another adaptation
            (its fingerprint differs from ``expected``); each says to remove it.
    """
    from samic_vos.hub.weights import load_checkpoint

    path = Path(path)
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path, map_location="cpu")
    except UserError:  # its advice (save or download the file again) does not apply here
        raise UserError(
            f"{path}: damaged adaptation state (cut or corrupt); remove it to adapt afresh"
        ) from None
    if state.get("format") != FORMAT or state.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: not a samic-vos adaptation state; remove it or choose another")
    if state.get("fingerprint") != expected:
        raise UserError(
            f"{path}: holds the adaptation of another frame, mask, network or configuration; "
            "remove it to adapt afresh"
        )
    return state
