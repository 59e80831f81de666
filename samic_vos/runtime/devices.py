"""Compute device selection.

``--device auto|cuda|cuda:N|mps|cpu``: ``auto`` picks CUDA, then Apple's MPS, then the CPU.
Asking for a device this machine does not have is a user mistake: one line naming the device
and the ones that are available. Every job chooses its device here first, so this is also
where CPU flush-to-zero is turned on for every job (:func:`flush_denormals`).
"""

from __future__ import annotations

import torch

from samic_vos.runtime.errors import UserError

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def available_devices() -> list[str]:
    """Names of the device kinds usable on this machine, best first (``cpu`` always last)."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def valid_device_name(name: str) -> bool:
    """Whether ``name`` is spelled as a device: auto, cuda, cuda:N, mps or cpu."""
    kind, colon, index = name.strip().lower().partition(":")
    if kind == "cuda" and colon:
        return index.isdigit()
    return not colon and kind in DEVICE_CHOICES


def flush_denormals() -> bool:
    """Make CPU float operations treat and produce denormals as 0 (x86 FTZ/DAZ flags).

    Denormal floats (below 1.2e-38 in float32) can make CPU matrix products and convolutions
    many times slower; results differ only below that magnitude. Returns False where the CPU has
    no such mode.
    """
    return torch.set_flush_denormal(True)


def select_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (``auto``, ``cuda``, ``cuda:N``, ``mps`` or ``cpu``).

    Also turns on :func:`flush_denormals` (for the CPU work of every job, whatever device).
    Raises :class:`UserError` for an unknown name or a device this machine does not have.
    """
    flush_denormals()
    name = name.strip().lower()
    available = available_devices()
    if name == "auto":
        return torch.device(available[0])
    if not valid_device_name(name):
        raise UserError(f"unknown device '{name}': use one of auto, cuda, cuda:N, mps, cpu")
    kind, _, index = name.partition(":")
    if kind not in available:
        raise UserError(
            f"device '{name}' is not available on this machine; "
            f"use `device` auto or one of: {', '.join(available)}"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise UserError(
            f"device '{name}' does not exist: this machine has "
            f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)"
        )
    return torch.device(name)


def shard_device(name: str, local_rank: int | None) -> torch.device:
    """:func:`select_device` of ``name``, on GPU ``local_rank`` when a launcher (torchrun) runs
    one process per GPU and ``name`` resolves to CUDA; otherwise the device ``name`` gives."""
    device = select_device(name)
    if device.type == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank)
    return device
