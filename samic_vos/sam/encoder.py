"""SAM's image encoder, chosen in one place: Meta's reference, or the same modules with SDPA.

Every job gets the encoder it runs from :func:`build_image_encoder` (through
:class:`~samic_vos.sam.segmenter.SamSegmenter`), configured by :class:`EncoderConfig`:

- ``implementation="sdpa"`` (default) runs the submodules of Meta's ``ImageEncoderViT`` (its
  own weights, state dict unchanged) with a forward of our own, where attention is
  ``torch.nn.functional.scaled_dot_product_attention`` and the decomposed relative-position
  bias (MViTv2, as in Meta's ``add_decomposed_rel_pos``) is its additive mask. Meta's
  attention materialises the whole score matrix three times over (scores, scores + bias,
  softmax; for ViT-B's global blocks 12 heads × 4096² float32 = 805 MB each); here only the
  bias is built, for a chunk of query rows at a time (``mask_chunk_mib``), and SDPA computes
  the rest in tiles. Nothing in ``segment_anything`` is patched: Meta's ``ImageEncoderViT``
  keeps its own forward everywhere else in the process.
- ``implementation="reference"``: Meta's ``ImageEncoderViT.forward`` as is.
- ``precision``: the encoder runs under autocast in bfloat16 or float16, or in float32; its
  output is always float32, and SAM's prompt encoder and mask decoder stay float32.
- ``compile``: ``torch.compile`` of the encoder (opt-in; the first frame pays the compilation,
  which is logged once with its measured time).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, Sam
from segment_anything.modeling.image_encoder import (
    Attention,
    Block,
    get_rel_pos,
    window_partition,
    window_unpartition,
)
from torch import nn

from samic_vos.runtime.errors import UserError
from samic_vos.sam.names import PRECISIONS

log = logging.getLogger(__name__)

IMPLEMENTATIONS: tuple[str, ...] = ("sdpa", "reference")
RUN_AHEAD_CHOICES: tuple[str, ...] = ("auto", "on", "off")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_MIB = 1 << 20


@dataclass
class EncoderConfig:
    """How SAM's image encoder runs (defaults; YAML and flags only override)."""

    implementation: str = "sdpa"  # sdpa (same weights, SDPA attention) | reference (Meta's)
    # auto: bf16 on CUDA with bf16 and on CPUs with AVX512-BF16 or AMX, else fp32
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the encoder; the first frame pays the compilation
    # Largest relative-position bias (MiB) built at once; None: 16 on a CPU (the chunk stays in
    # cache: measured faster than one whole mask), 1024 elsewhere (a GPU wants big SDPA calls).
    mask_chunk_mib: float | None = None
    # The next frame's encoding runs in a worker thread while the current frame is prompted
    # (its decoding always does): auto = on with CUDA only (on a CPU both would fight over the
    # same cores).
    run_ahead: str = "auto"  # auto | on | off

    def __post_init__(self) -> None:
        for key, value, choices in (
            ("implementation", self.implementation, IMPLEMENTATIONS),
            ("precision", self.precision, PRECISIONS),
            ("run_ahead", self.run_ahead, RUN_AHEAD_CHOICES),
        ):
            if value not in choices:
                raise UserError(f"encoder.{key} must be one of {', '.join(choices)}, got {value!r}")
        if not isinstance(self.compile, bool):
            raise UserError(f"encoder.compile must be true or false, got {self.compile!r}")
        if self.mask_chunk_mib is not None and not (
            isinstance(self.mask_chunk_mib, (int, float)) and self.mask_chunk_mib > 0
        ):
            raise UserError(
                "encoder.mask_chunk_mib must be a positive number of MiB, "
                f"got {self.mask_chunk_mib!r}"
            )


def fast_half_supported(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether ``device`` has fast instructions for ``dtype`` (bfloat16 or float16).

    CUDA: float16 always, bfloat16 where ``torch.cuda.is_bf16_supported()``. CPU: bfloat16 with
    AVX512-BF16 or AMX, float16 with AMX-FP16 (torch's own CPU feature probes); without them
    half precision is emulated and slower than float32. Other devices: assumed supported.
    """
    if device.type == "cuda":
        return dtype == torch.float16 or torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = (
            ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
            if dtype == torch.bfloat16
            else ("_is_amx_fp16_supported",)
        )
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return True


def precision_name(dtype: torch.dtype) -> str:
    """The precision (``fp32``, ``bf16`` or ``fp16``) that computes in ``dtype``."""
    return next(name for name, known in _DTYPES.items() if known == dtype)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The encoder's compute dtype for ``precision`` on ``device``.

    ``auto``: bfloat16 on a CUDA device that has it and on a CPU that computes it natively
    (AVX512-BF16 or AMX: measured 1.8-3.2x faster than float32 for SAM ViT-B on an AVX512-BF16
    AMD EPYC, BENCHMARKS.md "bf16 on the CPU"), else float32. Half precision asked for on
    a device without fast support for it is honoured (the results stay valid) with a one-line
    warning that it is slower than fp32 there: a warning rather than an error, since a user may
    want the GPU's precision on a CPU to compare results.
    """
    if precision == "auto":
        native = device.type in ("cuda", "cpu") and fast_half_supported(torch.bfloat16, device)
        return torch.bfloat16 if native else torch.float32
    dtype = _DTYPES[precision]
    if dtype != torch.float32 and not fast_half_supported(dtype, device):
        log.warning(
            "%s: this %s has no fast %s instructions, so SAM's image encoder runs slower than "
            "in fp32; use precision fp32 here",
            precision,
            device.type.upper(),
            precision,
        )
    return dtype


def _sdpa_with_rel_pos(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_h: torch.Tensor,
    rel_w: torch.Tensor,
    chunk_bytes: int,
) -> torch.Tensor:
    """Attention with the decomposed relative-position bias as SDPA's additive mask.

    Args:
        q, k, v: (B, heads, h*w, E) queries, keys, values over an h×w token grid (row-major).
        rel_h: (B, heads, h, w, h) bias of each query towards each key row.
        rel_w: (B, heads, h, w, w) bias of each query towards each key column.
        chunk_bytes: the largest mask built at once; the mask of query rows ``r0:r1`` of batch
            items ``b0:b1`` is ``rel_h[..., :, None] + rel_w[..., None, :]`` for those only.

    Returns:
        (B, heads, h*w, E), equal to softmax(q kᵀ / √E + bias) v.
    """
    batch, heads, rows, cols, key_rows = rel_h.shape
    key_cols = rel_w.shape[-1]
    row_bytes = heads * cols * key_rows * key_cols * q.element_size()  # one query row's mask
    rows_per_chunk = max(1, min(rows, chunk_bytes // row_bytes))
    items_per_chunk = max(1, chunk_bytes // (row_bytes * rows)) if rows_per_chunk == rows else 1
    out = torch.empty_like(q)
    for b0 in range(0, batch, items_per_chunk):
        items = slice(b0, b0 + items_per_chunk)
        for r0 in range(0, rows, rows_per_chunk):
            r1 = min(rows, r0 + rows_per_chunk)
            tokens = slice(r0 * cols, r1 * cols)
            mask = rel_h[items, :, r0:r1, :, :, None] + rel_w[items, :, r0:r1, :, None, :]
            mask = mask.reshape(mask.shape[0], heads, (r1 - r0) * cols, key_rows * key_cols)
            out[items, :, tokens] = F.scaled_dot_product_attention(
                q[items, :, tokens], k[items], v[items], attn_mask=mask.to(q.dtype)
            )
    return out


def _attention(attn: Attention, x: torch.Tensor, chunk_bytes: int) -> torch.Tensor:
    """Meta's ``Attention.forward`` on (B, h, w, C) tokens, computed with SDPA."""
    batch, rows, cols, _ = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x).reshape(batch, rows * cols, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, heads, h*w, E)
    if attn.use_rel_pos:
        grid_q = q.reshape(batch, heads, rows, cols, -1)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, get_rel_pos(rows, rows, attn.rel_pos_h))
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", grid_q, get_rel_pos(cols, cols, attn.rel_pos_w))
        out = _sdpa_with_rel_pos(q, k, v, rel_h, rel_w, chunk_bytes)
    else:
        out = F.scaled_dot_product_attention(q, k, v)
    out = (
        out.view(batch, heads, rows, cols, -1).permute(0, 2, 3, 1, 4).reshape(batch, rows, cols, -1)
    )
    return attn.proj(out)


def _block(block: Block, x: torch.Tensor, chunk_bytes: int) -> torch.Tensor:
    """Meta's ``Block.forward`` (windowed or global) with :func:`_attention`."""
    shortcut = x
    x = block.norm1(x)
    if block.window_size > 0:
        size = (x.shape[1], x.shape[2])
        x, padded = window_partition(x, block.window_size)
    x = _attention(block.attn, x, chunk_bytes)
    if block.window_size > 0:
        x = window_unpartition(x, block.window_size, padded, size)
    x = shortcut + x
    return x + block.mlp(block.norm2(x))


class SdpaImageEncoder(nn.Module):
    """Meta's ``ImageEncoderViT`` submodules (shared, not copied) with an SDPA forward.

    Args:
        reference: the encoder whose patch embedding, position embedding, blocks and neck run.
        chunk_bytes: the largest relative-position mask built at once (see
            :func:`_sdpa_with_rel_pos`).
    """

    def __init__(self, reference: ImageEncoderViT, chunk_bytes: int) -> None:
        super().__init__()
        self.reference = reference
        self.chunk_bytes = chunk_bytes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised, padded images → (B, C, S/16, S/16) embeddings."""
        ref = self.reference
        x = ref.patch_embed(x)
        if ref.pos_embed is not None:
            x = x + ref.pos_embed
        for block in ref.blocks:
            x = _block(block, x, self.chunk_bytes)
        return ref.neck(x.permute(0, 3, 1, 2))


class SamImageEncoder:
    """The image encoder a job runs: images → float32 embeddings, in inference mode.

    Made by :func:`build_image_encoder`. Calling it with (B, 3, S, S) float32 images
    (normalised and padded by ``Sam.preprocess``, on ``device``) returns (B, C, S/16, S/16)
    float32 embeddings (a tuple of float32 maps for the families whose encoder gives several,
    :mod:`samic_vos.sam.families`). It keeps no per-call state, so a worker thread may call it.
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], Any],
        device: torch.device,
        dtype: torch.dtype,
        compiled: bool,
    ) -> None:
        self._forward = forward
        self.device = device
        self.dtype = dtype
        self._compile_pending = compiled

    def __call__(self, images: torch.Tensor) -> Any:
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=self.dtype)
            if self.dtype != torch.float32
            else contextlib.nullcontext()
        )
        started = time.perf_counter()
        with torch.inference_mode(), autocast:
            out = self._forward(images)
        if self._compile_pending:
            self._compile_pending = False
            log.info(
                "torch.compile: SAM's image encoder compiled on its first call (%.1f s with "
                "that call); later calls run the compiled code",
                time.perf_counter() - started,
            )
        if isinstance(out, torch.Tensor):
            return out.float()
        return tuple(t.float() for t in out)  # a family whose encoder gives several maps


def build_image_encoder(
    sam: Sam, config: EncoderConfig | None = None, device: torch.device | str | None = None
) -> SamImageEncoder:
    """The SAM image encoder every job runs (the one place that chooses it).

    Args:
        sam: the SAM model; its ``image_encoder`` (Meta's ``ImageEncoderViT``) is used as is,
            never modified, and must already sit on ``device``.
        config: implementation, precision, compile and mask chunk (default ``EncoderConfig()``).
        device: where the encoder runs (default: where ``sam``'s parameters are).
    """
    config = config or EncoderConfig()
    reference = sam.image_encoder
    device = torch.device(device) if device is not None else next(reference.parameters()).device
    dtype = resolve_precision(config.precision, device)
    module: nn.Module = reference
    if config.implementation == "sdpa":
        chunk_mib = config.mask_chunk_mib or (16 if device.type == "cpu" else 1024)
        module = SdpaImageEncoder(reference, int(chunk_mib * _MIB)).eval()
    forward: Callable[[torch.Tensor], torch.Tensor] = module
    if config.compile:
        log.info(
            "torch.compile of SAM's image encoder: the first frame includes the compilation "
            "(a minute or more); later frames run compiled"
        )
        forward = torch.compile(module)
    return SamImageEncoder(forward, device, dtype, compiled=config.compile)


# The first layer of a transformer block in every family's image encoder: SAM's and HQ-SAM's
# ViT blocks (run by Meta's forward or by :class:`SdpaImageEncoder`, which calls the block's
# layers, not the block) and SAM 2's Hiera blocks all start with ``norm1``.
_BLOCK_START = re.compile(r"(^|\.)blocks\.\d+\.norm1$")


def add_pause_points(sam: nn.Module, pause: Callable[[], None]) -> Callable[[], None]:
    """Call ``pause()`` as each transformer block of ``sam``'s image encoder starts, in the
    thread that encodes (a place where background encoding can wait,
    :class:`~samic_vos.runtime.thread_priority.ForegroundGate`); the outputs are unchanged.
    Returns a function removing these calls."""
    handles = [
        module.register_forward_pre_hook(lambda _module, _args: pause())
        for name, module in sam.image_encoder.named_modules()
        if _BLOCK_START.search(name)
    ]

    def remove() -> None:
        for handle in handles:
            handle.remove()

    return remove
