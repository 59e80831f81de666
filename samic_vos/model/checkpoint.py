"""SAMIC checkpoints that carry their architecture: save and load a :class:`SamicNet`.

A checkpoint is a ``torch.save`` dict, loadable with ``weights_only=True`` (plain data and
tensors only), holding:

- ``format`` (:data:`FORMAT`) and ``format_version`` (:data:`FORMAT_VERSION`);
- ``version`` (samic-vos), ``torch_version``, ``torchvision_version``;
- ``net_config``: the :class:`SamicNetConfig` as a dict, enough to rebuild the network;
- ``state_dict``: the learnable head only; the frozen backbone is rebuilt on load (ImageNet
  weights through the registry, or a random backbone from its seed);
- ``config`` (the training/run configuration), ``metrics``, ``training`` (resume state: optimizer,
  history), each a plain dict or ``None``.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any

import torch
import torchvision

from samic_vos.model.samic_net import SamicNet, SamicNetConfig, build_samic
from samic_vos.runtime.atomic import atomic_write_bytes
from samic_vos.runtime.config import apply_overrides, config_to_dict
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.version import __version__

log = logging.getLogger(__name__)

FORMAT = "samic-vos/samic-net"
FORMAT_VERSION = 1


def save_samic(
    path: str | os.PathLike[str],
    model: SamicNet,
    *,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (architecture + learnable weights) to ``path`` atomically.

    Args:
        config: the run's configuration (dataclasses and paths become plain values).
        metrics: numbers worth keeping with the weights (validation loss, epoch ...).
        training: resume state (optimizer state dict, loop state); tensors allowed.

    Raises:
        ValueError: ``config``, ``metrics`` or ``training`` hold objects that a safe
            (``weights_only``) load would refuse, e.g. numpy scalars; checked before writing.
        UserError: the file cannot be written (missing folder, permissions).
    """
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "torch_version": str(torch.__version__),
        "torchvision_version": str(torchvision.__version__),
        "net_config": config_to_dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.learnable_state_dict().items()},
        "config": None if config is None else config_to_dict(config),
        "metrics": None if metrics is None else config_to_dict(metrics),
        "training": training,
    }
    buffer = io.BytesIO()
    torch.save(data, buffer)
    try:  # fail now, not when someone loads it: the loader only accepts plain data
        torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"checkpoint metadata must hold only tensors and plain Python values: {err}"
        ) from err
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as err:
        raise UserError(f"{path}: cannot write the checkpoint ({err.strerror or err})") from err


def stored_net_config(path: str | os.PathLike[str]) -> SamicNetConfig:
    """The network config the SAMIC checkpoint at ``path`` was saved with (its backbone kind
    tells whether loading it needs ResNet-50's ImageNet weights); UserError as
    :func:`load_samic`."""
    return _read_samic(path)[1]


def _read_samic(path: str | os.PathLike[str]) -> tuple[dict[str, Any], SamicNetConfig]:
    """The checkpoint dict at ``path`` and its network config, checked."""
    from samic_vos.hub.weights import load_checkpoint

    data = load_checkpoint(path, map_location="cpu")
    fix = "pass a checkpoint written by samic-vos (train, or track's adapted model)"
    if data.get("format") != FORMAT or not isinstance(data.get("state_dict"), dict):
        raise UserError(f"{path}: not a SAMIC checkpoint; {fix}")
    if not isinstance(data.get("format_version"), int) or data["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {data.get('format_version')} is newer than this "
            f"samic-vos ({__version__}) reads; upgrade samic-vos"
        )
    try:
        net_config = apply_overrides(SamicNetConfig(), dict(data.get("net_config") or {}))
    except UserError as err:
        raise UserError(f"{path}: bad network config in checkpoint: {err}") from err
    return data, net_config


def load_samic(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    backbone_weights: str | os.PathLike[str] | None = None,
) -> tuple[SamicNet, dict[str, Any]]:
    """Rebuild the network saved at ``path``, in eval mode, on ``map_location``.

    Args:
        backbone_weights: ResNet-50 ImageNet state dict for an ``"imagenet"`` backbone
            (``None``: the weights registry); must be ``None`` for a random backbone.

    Returns:
        ``(model, meta)``: ``meta`` is the checkpoint dict without ``state_dict``: keys
        ``version``, ``net_config``, ``config``, ``metrics``, ``training`` and the format tags.

    Raises:
        UserError: naming ``path``: missing, unreadable, not a SAMIC checkpoint, a newer
            format, or weights that do not fit the stored architecture.
    """
    data, net_config = _read_samic(path)
    if net_config.backbone == "random" and (
        data.get("torch_version"),
        data.get("torchvision_version"),
    ) != (str(torch.__version__), str(torchvision.__version__)):
        log.warning(
            "%s: saved with torch %s / torchvision %s; the random backbone rebuilt here with "
            "torch %s / torchvision %s may differ",
            path,
            data.get("torch_version"),
            data.get("torchvision_version"),
            torch.__version__,
            torchvision.__version__,
        )
    model = build_samic(net_config, backbone_weights)
    try:
        model.head.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        detail = str(err).strip().splitlines()[0]
        raise UserError(f"{path}: weights do not fit the stored architecture ({detail})") from err
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    return model.to(map_location).eval(), meta
