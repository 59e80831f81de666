"""HSNet's learner (juhongm999/hsnet, ``model/learner.py``) rewritten from its description, for
parity tests: a random checkpoint in HSNet's key layout, and HSNet's forward pass over it with
every bilinear resize done in numpy by the ``align_corners=True`` formula.

Nothing here imports samic_vos's network code: the checks compare two independent writings.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PREFIX = "module.hpn_learner."  # HSNet saves nn.DataParallel(model).state_dict()
CHANNELS = (16, 64, 128)
# (block name, input channels, kernel sizes, support strides), HSNet's ResNet-50 learner.
SQUEEZE = (
    ("encoder_layer4", 3, (3, 3, 3), (2, 2, 2)),
    ("encoder_layer3", 6, (5, 3, 3), (4, 2, 2)),
    ("encoder_layer2", 4, (5, 5, 3), (4, 4, 2)),
)
MIX = ("encoder_layer4to3", "encoder_layer3to2")


def bilinear_align_corners(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the last two dims of ``x`` to ``size``: output pixel i reads input position
    ``i · (n_in − 1) / (n_out − 1)`` (corner pixels coincide), linearly between neighbours."""

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
        lo = np.minimum(np.floor(pos).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo

    y0, y1, fy = axis(x.shape[-2], size[0])
    x0, x1, fx = axis(x.shape[-1], size[1])
    rows = x[..., y0, :] * (1 - fy)[:, None] + x[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return torch.from_numpy(bilinear_align_corners(x.double().numpy(), size))


def random_hsnet_checkpoint(seed: int, inch: tuple[int, int, int] = (3, 6, 4)) -> dict:
    """A state dict with HSNet's keys and shapes, random values (and one backbone key)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {"module.backbone.conv1.weight": torch.randn(64, 3, 7, 7)}

    def conv(name: str, cin: int, cout: int, k: int) -> None:
        scale = (1.0 / (cin * k * k)) ** 0.5
        state[f"{PREFIX}{name}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * scale
        state[f"{PREFIX}{name}.bias"] = torch.randn(cout, generator=gen) * 0.1

    def block(name: str, cin: int, outs: tuple[int, ...], kernels: tuple[int, ...]) -> None:
        for i, (cout, k) in enumerate(zip(outs, kernels, strict=True)):
            conv(f"{name}.{3 * i}.conv1", cin, cout, k)
            conv(f"{name}.{3 * i}.conv2", cin, cout, k)
            state[f"{PREFIX}{name}.{3 * i + 1}.weight"] = 1 + 0.1 * torch.randn(cout, generator=gen)
            state[f"{PREFIX}{name}.{3 * i + 1}.bias"] = 0.1 * torch.randn(cout, generator=gen)
            cin = cout

    for (name, _, kernels, _), cin in zip(SQUEEZE, inch, strict=True):
        block(name, cin, CHANNELS, kernels)
    for name in MIX:
        block(name, CHANNELS[2], (CHANNELS[2],) * 3, (3, 3, 3))
    conv("decoder1.0", CHANNELS[2], CHANNELS[2], 3)
    conv("decoder1.2", CHANNELS[2], CHANNELS[1], 3)
    conv("decoder2.0", CHANNELS[1], CHANNELS[1], 3)
    conv("decoder2.2", CHANNELS[1], 2, 3)
    return state


def _center_pivot(x: torch.Tensor, state: dict, name: str, stride: int) -> torch.Tensor:
    """HSNet's CenterPivotConv4d: conv1 over the query dims at strided support positions,
    conv2 over the support dims with the stride; their sum."""
    b, c, ha, wa, hb, wb = x.shape
    w1, b1 = state[f"{name}.conv1.weight"].double(), state[f"{name}.conv1.bias"].double()
    w2, b2 = state[f"{name}.conv2.weight"].double(), state[f"{name}.conv2.bias"].double()
    pad = w1.shape[-1] // 2
    pruned = x[..., ::stride, ::stride]
    ph, pw = pruned.shape[-2:]
    out1 = F.conv2d(pruned.permute(0, 4, 5, 1, 2, 3).reshape(-1, c, ha, wa), w1, b1, padding=pad)
    out1 = out1.view(b, ph, pw, -1, ha, wa).permute(0, 3, 4, 5, 1, 2)
    out2 = F.conv2d(
        x.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, hb, wb), w2, b2, stride=stride, padding=pad
    )
    out2 = out2.view(b, ha, wa, -1, *out2.shape[-2:]).permute(0, 3, 1, 2, 4, 5)
    return out1 + out2


def _block(x: torch.Tensor, state: dict, name: str, strides: tuple[int, ...]) -> torch.Tensor:
    for i, stride in enumerate(strides):
        x = _center_pivot(x, state, f"{PREFIX}{name}.{3 * i}", stride)
        gn_w, gn_b = (
            state[f"{PREFIX}{name}.{3 * i + 1}.weight"],
            state[f"{PREFIX}{name}.{3 * i + 1}.bias"],
        )
        x = F.relu(F.group_norm(x, 4, gn_w.double(), gn_b.double()))
    return x


def _resize_query(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    b, c, ha, wa, hb, wb = x.shape
    y = _resize(x.permute(0, 1, 4, 5, 2, 3), size)  # query dims last
    return y.permute(0, 1, 4, 5, 2, 3)


def _conv(x: torch.Tensor, state: dict, name: str) -> torch.Tensor:
    weight, bias = state[f"{PREFIX}{name}.weight"], state[f"{PREFIX}{name}.bias"]
    return F.conv2d(x, weight.double(), bias.double(), padding=1)


def hsnet_foreground(
    pyramid: list[torch.Tensor], state: dict, out_size: tuple[int, int]
) -> torch.Tensor:
    """HSNet's foreground probability ``(B, H, W)`` (float64) from the 3 hypercorrelations
    (layer4, layer3, layer2): learner, decoder, upsample to ``out_size``, softmax channel 1.

    HSNet's decoder upsample is ``(2·W, 2·W)`` (square inputs only); it is ``(2·H, 2·W)`` here,
    the same on square inputs.
    """
    sq4, sq3, sq2 = (
        _block(c.double(), state, name, strides)
        for c, (name, _, _, strides) in zip(pyramid, SQUEEZE, strict=True)
    )
    mixed = _block(_resize_query(sq4, sq3.shape[2:4]) + sq3, state, MIX[0], (1, 1, 1))
    mixed = _block(_resize_query(mixed, sq2.shape[2:4]) + sq2, state, MIX[1], (1, 1, 1))
    x = mixed.flatten(4).mean(-1)
    x = F.relu(_conv(F.relu(_conv(x, state, "decoder1.0")), state, "decoder1.2"))
    x = _resize(x, (2 * x.shape[-2], 2 * x.shape[-1]))
    x = _conv(F.relu(_conv(x, state, "decoder2.0")), state, "decoder2.2")
    return torch.softmax(_resize(x, out_size), dim=1)[:, 1]
