"""Compute device selection and mixed precision.

``--device auto|cuda|cuda:N|mps|cpu``: ``auto`` picks CUDA, then Apple's MPS, then the CPU.
Asking for a device this machine does not have is a user mistake: one line naming the device
and the ones that are available.
"""

from __future__ import annotations

import contextlib

import torch

from samic_vos.errors import UserError

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


def select_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (``auto``, ``cuda``, ``cuda:N``, ``mps`` or ``cpu``).

    Raises :class:`UserError` for an unknown name or a device this machine does not have.
    """
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


def amp_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast is used on ``device`` (CUDA with bfloat16 support only).

    CPU and MPS run in float32: bfloat16 autocast is slower than float32 on most CPUs.
    """
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def autocast_context(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """A bfloat16 autocast context on CUDA where supported, else a context that does nothing."""
    if amp_supported(device):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
