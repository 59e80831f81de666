"""SAM's mask decoder without recomputing, prompt after prompt, what depends on the image only.

In the first block of SAM's two-way transformer the image side has not yet seen the prompt:
the token-to-image attention's key and value projections and the image-to-token attention's
query projection take the image embedding (plus the constant "no mask" dense embedding and
the positional encoding) and nothing else. For a run of prompts on one image (SAMBOX clicks,
the tracker's groups) these three (1, h·w, C) → (1, h·w, C/2) projections give the same result
each time; they are a sizeable part of the decoder's work on a CPU.

:func:`reuse_image_projections` makes those three ``nn.Linear`` layers keep their last input
and output: when the next input is equal (``torch.equal``: same shape, same values) the kept
output is returned, otherwise the layer computes as usual. The output is the layer's own for
that very input, so masks and scores are exactly those of the stock decoder. The layers stay
the same objects with the same parameters and ``state_dict`` keys (their class becomes
:class:`ReusingLinear`, a subclass of ``nn.Linear``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from segment_anything.modeling import Sam
from torch import nn


@dataclass
class ReuseCounts:
    """How often the reusing projections were called and how often they reused."""

    calls: int = 0
    reused: int = 0


class ReusingLinear(nn.Linear):
    """An ``nn.Linear`` that returns its last output again for an input equal to its last one.

    Made from an existing layer by :func:`reuse_image_projections` (its class is swapped, its
    parameters are untouched); ``counts`` is shared by the layers of one model.
    """

    counts: ReuseCounts
    _kept: tuple[torch.Tensor, torch.Tensor] | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counts.calls += 1
        kept = self._kept
        if kept is not None and kept[0].dtype == x.dtype and kept[0].device == x.device:
            if torch.equal(kept[0], x):
                self.counts.reused += 1
                return kept[1]
        out = super().forward(x)
        # Only inference results are kept: a tensor that autograd records is used once.
        self._kept = None if out.requires_grad else (x.clone(), out)
        return out


def reuse_image_projections(sam: Sam) -> ReuseCounts:
    """Make the image-only projections of ``sam``'s first decoder block reuse their last result
    for an equal input (see the module docstring); returns the counts they update."""
    first = sam.mask_decoder.transformer.layers[0]
    layers = (
        first.cross_attn_token_to_image.k_proj,
        first.cross_attn_token_to_image.v_proj,
        first.cross_attn_image_to_token.q_proj,
    )
    if isinstance(layers[0], ReusingLinear):  # a second segmenter on the same model
        return layers[0].counts
    counts = ReuseCounts()
    for layer in layers:
        layer.__class__ = ReusingLinear
        layer.counts, layer._kept = counts, None
    return counts
