"""Center-pivot 4D convolution over correlation tensors (HSNet, Min et al., ICCV 2021).

A 4D correlation tensor has shape ``(B, C, Hq, Wq, Hs, Ws)``: for every query (target) position
``(Hq, Wq)`` and every support (reference) position ``(Hs, Ws)`` one value per channel. A full
4D convolution is costly; the center-pivot version sums two 2D convolutions: one over the query
dims at each support position, one over the support dims at each query position. Strides apply
to the support dims only, so the query resolution is kept for the decoder.

Nothing is cached between calls (HSNet caches the strided support indices on first use, which
breaks on a second input size): every call slices its own input, so any size works.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

# Every bilinear resize of the learner (between levels and in the decoder) aligns corners, as
# HSNet's HPNLearner does, so that HSNet's trained weights give HSNet's outputs.
ALIGN_CORNERS = True


class CenterPivotConv4d(nn.Module):
    """4D convolution as the sum of a query-dims and a support-dims 2D convolution.

    Input ``(B, C_in, Hq, Wq, Hs, Ws)`` → output ``(B, C_out, Hq, Wq, ⌈Hs/s⌉, ⌈Ws/s⌉)`` with
    ``s = support_stride``; odd ``kernel_size`` with "same" padding on all four dims.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, support_stride: int = 1
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        self.support_stride = support_stride
        self.query_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad)
        self.support_conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=support_stride, padding=pad
        )

    def forward(self, x: Tensor) -> Tensor:
        b, c, hq, wq, hs, ws = x.shape
        s = self.support_stride
        # Query-dims conv at the support positions the strided support conv is centred on:
        # indices 0, s, 2s, ... which gives ⌈Hs/s⌉ positions, as the strided conv does.
        pivots = x[..., ::s, ::s]
        ho, wo = pivots.shape[-2:]
        q = pivots.permute(0, 4, 5, 1, 2, 3).reshape(b * ho * wo, c, hq, wq)
        q = self.query_conv(q)
        q = q.view(b, ho, wo, -1, hq, wq).permute(0, 3, 4, 5, 1, 2)
        sup = x.permute(0, 2, 3, 1, 4, 5).reshape(b * hq * wq, c, hs, ws)
        sup = self.support_conv(sup)
        sup = sup.view(b, hq, wq, -1, ho, wo).permute(0, 3, 1, 2, 4, 5)
        return q + sup


def resize_query_dims(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize the query dims of ``(B, C, Hq, Wq, Hs, Ws)`` to ``size = (Hq', Wq')``.

    Uses ``align_corners=True`` (:data:`ALIGN_CORNERS`: the corner cells of both grids
    coincide, as in HSNet), leaving the support dims untouched.
    """
    b, c, hq, wq, hs, ws = x.shape
    if (hq, wq) == tuple(size):
        return x
    y = x.permute(0, 4, 5, 1, 2, 3).reshape(b * hs * ws, c, hq, wq)
    y = F.interpolate(y, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)
    return y.view(b, hs, ws, c, *size).permute(0, 3, 4, 5, 1, 2)
