"""Warm-start SAMIC's learner from a published HSNet checkpoint (Min et al., ICCV 2021).

HSNet's ResNet-50 checkpoints (FSS-1000, PASCAL-5i folds; ``best_model.pt`` of its
``train.py``) are ``torch.save``'d state dicts of ``nn.DataParallel(HypercorrSqueezeNetwork)``:
keys ``module.backbone.*`` (the frozen torchvision ResNet-50) and ``module.hpn_learner.*``
(the learner, the same architecture as :class:`samic_vos.model.samic_net.SamicHead`).
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor

from samic_vos.hub.weights import load_checkpoint
from samic_vos.model.samic_net import SamicHead
from samic_vos.runtime.errors import UserError

log = logging.getLogger(__name__)

LEARNER_PREFIX = "hpn_learner."
# HSNet's learner blocks → ours; inside a block the layer indices are the same.
BLOCKS = {
    "encoder_layer4": "squeeze.0",
    "encoder_layer3": "squeeze.1",
    "encoder_layer2": "squeeze.2",
    "encoder_layer4to3": "mix43",
    "encoder_layer3to2": "mix32",
    "decoder1": "decoder1",
    "decoder2": "decoder2",
}
# HSNet's CenterPivotConv4d: conv1 runs over the query dims, conv2 over the support dims.
CONVS = {"conv1": "query_conv", "conv2": "support_conv"}
HEAD_CONV = "decoder2.2."  # the last convolution: 2 channels (HSNet) → 1 (ours)


def hsnet_learner_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The state dict of a :class:`SamicHead` from an HSNet checkpoint's state dict.

    Keys: ``[module.]hpn_learner.<block>.<i>.<rest>`` → ``<ours>.<i>.<rest>`` with the blocks
    of :data:`BLOCKS` and, in 4D convolutions, ``conv1`` → ``query_conv`` and ``conv2`` →
    ``support_conv``; every other key (the backbone) is dropped, since our backbone is
    rebuilt from torchvision's ImageNet weights (HSNet's is the same frozen ResNet-50).

    Head: HSNet ends in 2 logits per pixel, (background, foreground), read by a softmax;
    ours in 1 logit read by a sigmoid. ``softmax(l)[fg] = sigmoid(l_fg − l_bg)`` and the
    last layer is linear (a convolution, then a bilinear upsample), so our single output
    channel gets weight ``W[1] − W[0]`` and bias ``b[1] − b[0]``: our heat map is then
    exactly HSNet's foreground probability.

    Returns:
        Tensors keyed as :meth:`SamicHead.state_dict` (float32, on the CPU).

    Raises:
        ValueError: the dict holds no HSNet learner, or its head is not 2-channel.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key.removeprefix("module.")
        if not name.startswith(LEARNER_PREFIX):
            continue
        block, index, *rest = name.removeprefix(LEARNER_PREFIX).split(".")
        if block not in BLOCKS or not rest:
            raise ValueError(f"unexpected HSNet learner key '{key}'")
        rest = [CONVS.get(rest[0], rest[0]), *rest[1:]] if len(rest) > 1 else rest
        out[".".join([BLOCKS[block], index, *rest])] = value.detach().float().cpu()
    if not out:
        raise ValueError("no HSNet learner weights (keys 'module.hpn_learner.*')")
    for name in ("weight", "bias"):
        key = HEAD_CONV + name
        if key not in out or out[key].shape[0] != 2:
            raise ValueError(f"HSNet's last layer '{key}' must have 2 output channels")
        out[key] = (out[key][1] - out[key][0]).unsqueeze(0)  # foreground − background
    return out


def load_hsnet_learner(head: SamicHead, path: str | os.PathLike[str]) -> None:
    """Load the learner of HSNet checkpoint ``path`` into ``head`` in place (see
    :func:`hsnet_learner_state` for the mapping).

    HSNet was trained with a binary support mask multiplied into the raw features
    (``net.heat_before_norm: true``) at 400×400; other settings still load, as a warm start.
    With those settings our forward pass is HSNet's except for the support mask's resize:
    HSNet samples the mask bilinearly (``align_corners=True``) to each feature grid, SAMIC
    pools it (``heat_pool``, by design), which marks every grid cell the mask touches.

    Raises:
        UserError: the file is missing or undecodable, or is not an HSNet ResNet-50
            checkpoint with this head's channels (keys or shapes differ).
    """
    state = load_checkpoint(path, map_location="cpu")
    advice = "pass the best_model.pt of an HSNet ResNet-50 run (FSS-1000 or PASCAL-5i)"
    try:
        mapped = hsnet_learner_state(state)
        _check_fits(head, mapped)
    except ValueError as err:
        raise UserError(f"{path}: not an HSNet ResNet-50 checkpoint ({err}); {advice}") from err
    with torch.no_grad():
        head.load_state_dict(mapped, strict=True)
    log.info("learner warm-started from HSNet checkpoint %s", path)


def _check_fits(head: SamicHead, state: dict[str, Tensor]) -> None:
    """Raise ValueError naming the first key that ``head`` lacks, misses or shapes otherwise."""
    expected = head.state_dict()
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected)
    if missing:
        raise ValueError(f"no weights for '{missing[0]}'")
    if unexpected:
        raise ValueError(f"unexpected weights '{unexpected[0]}'")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(
                f"'{key}' has shape {tuple(value.shape)}, this network needs "
                f"{tuple(expected[key].shape)}"
            )
