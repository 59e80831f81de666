"""SAM's ViT model assembled from a package's modules, as its ``build_sam`` assembles it: one
recipe for ``segment_anything`` (SAM, MedSAM) and ``segment_anything_hq`` (HQ-SAM), whose
modules share their names and arguments (HQ-SAM's mask decoder takes one more)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

# The normalisation every SAM ViT checkpoint was trained with (RGB, 0..255).
PIXEL_MEAN = [123.675, 116.28, 103.53]
PIXEL_STD = [58.395, 57.12, 57.375]


def assemble_sam(
    arch: Any, modeling: Any, decoder: type[torch.nn.Module], **decoder_extra: Any
) -> Any:
    """An untrained model of ``arch`` (a :class:`~samic_vos.sam.models.SamArch`) from the
    package module ``modeling`` (its ``Sam``, ``ImageEncoderViT``, ``PromptEncoder`` and
    ``TwoWayTransformer``) and the mask ``decoder`` class (``decoder_extra``: its further
    arguments); parameters on the default device."""
    grid = arch.image_size // arch.patch_size
    return modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=arch.encoder_depth,
            embed_dim=arch.encoder_embed_dim,
            img_size=arch.image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=arch.encoder_num_heads,
            patch_size=arch.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=arch.encoder_global_attn_indexes,
            window_size=arch.window_size,
            out_chans=arch.prompt_embed_dim,
        ),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=arch.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.image_size, arch.image_size),
            mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=decoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(
                depth=arch.decoder_depth,
                embedding_dim=arch.prompt_embed_dim,
                mlp_dim=arch.decoder_mlp_dim,
                num_heads=arch.decoder_num_heads,
            ),
            transformer_dim=arch.prompt_embed_dim,
            iou_head_depth=arch.iou_head_depth,
            iou_head_hidden_dim=arch.iou_head_hidden_dim,
            **decoder_extra,
        ),
        pixel_mean=PIXEL_MEAN,
        pixel_std=PIXEL_STD,
    )
