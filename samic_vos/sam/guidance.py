"""PerSAM's two additions to SAM's mask decoder, applied to the stock decoder of every family.

PerSAM (``persam.py`` and its patched ``per_segment_anything``) gives SAM's mask decoder two
extra inputs for the first mask of its image recipe:

- *target-guided attention*: in every two-way block, the tokens' attention over the image
  (``cross_attn_token_to_image``) becomes ``softmax(softmax(Q·Kᵀ / √d) + S)``, where S is a
  (h·w,) guidance map over the embedding grid, the same for every head and token;
- *target-semantic prompting*: the target's (C,) feature is added to the tokens before every
  block and to the final attention's queries. PerSAM adds it in place before the first block
  to the tokens that are also the blocks' positional term (``point_embedding``), so that term
  carries it too, in every block and in the final attention; this does the same.

:func:`guided_decoding` applies both to a decoder's ``TwoWayTransformer`` while a ``with``
block runs (forward pre-hooks, and a forward of the cross-attention set on the instance);
outside it the decoder is the stock one. SAM, HQ-SAM, MedSAM and SAM 2.1 share the layout it
relies on (``layers``, ``final_attn_token_to_image``, and attention modules with
``q_proj``/``k_proj``/``v_proj``/``out_proj`` and ``_separate_heads``/``_recombine_heads``).
The hooks belong to the model: decode one guided prompt at a time per model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class DecoderGuidance:
    """PerSAM's guidance of one SAM prompt.

    Attributes:
        attention: (h·w,) float32 map over the embedding grid (row-major), added to the
            softmaxed token-to-image attention before a second softmax (PerSAM: its
            standardised target similarity through a sigmoid, so in (0, 1)).
        target: (C,) float32 target feature added to the decoder's tokens (PerSAM: the mean
            image feature under the reference mask, not normalised).
    """

    attention: torch.Tensor
    target: torch.Tensor


def _guided_attention(
    module: nn.Module, guide: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """``module``'s attention with ``guide`` (1, 1, 1, h·w) added to its softmaxed weights and
    softmaxed again (PerSAM's target-guided attention)."""
    q = module._separate_heads(module.q_proj(q), module.num_heads)
    k = module._separate_heads(module.k_proj(k), module.num_heads)
    v = module._separate_heads(module.v_proj(v), module.num_heads)
    weights = q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1])
    weights = torch.softmax(torch.softmax(weights, dim=-1) + guide, dim=-1)
    return module.out_proj(module._recombine_heads(weights @ v))


def _add_to_tokens(
    target: torch.Tensor, module: nn.Module, args: tuple, kwargs: dict[str, Any]
) -> tuple[tuple, dict[str, Any]]:
    """The transformer's third input (``point_embedding``, the tokens) plus ``target``."""
    if "point_embedding" in kwargs:
        kwargs = {**kwargs, "point_embedding": kwargs["point_embedding"] + target}
    else:
        args = (*args[:2], args[2] + target, *args[3:])
    return args, kwargs


def _add_to_keyword(
    name: str, target: torch.Tensor, module: nn.Module, args: tuple, kwargs: dict[str, Any]
) -> tuple[tuple, dict[str, Any]]:
    """The keyword input ``name`` plus ``target`` (the blocks and the final attention are
    called with keywords by every family's transformer)."""
    return args, {**kwargs, name: kwargs[name] + target}


@contextmanager
def guided_decoding(transformer: nn.Module, guidance: DecoderGuidance | None) -> Iterator[None]:
    """Decode with PerSAM's guidance (module docstring) inside the ``with`` block; ``None``
    leaves the decoder as it is."""
    if guidance is None:
        yield
        return
    device = next(transformer.parameters()).device
    target = guidance.target.to(device, torch.float32).reshape(1, 1, -1)
    guide = guidance.attention.to(device, torch.float32).reshape(1, 1, 1, -1)
    layers = list(transformer.layers)
    handles = [
        transformer.register_forward_pre_hook(partial(_add_to_tokens, target), with_kwargs=True),
        transformer.final_attn_token_to_image.register_forward_pre_hook(
            partial(_add_to_keyword, "q", target), with_kwargs=True
        ),
    ]
    handles += [
        layer.register_forward_pre_hook(
            partial(_add_to_keyword, "queries", target), with_kwargs=True
        )
        for layer in layers[1:]
    ]
    attentions = [layer.cross_attn_token_to_image for layer in layers]
    for module in attentions:
        module.forward = partial(_guided_attention, module, guide)
    try:
        yield
    finally:
        for module in attentions:
            del module.forward
        for handle in handles:
            handle.remove()
