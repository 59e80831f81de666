"""PerSAM's decoder guidance (target-guided attention, target-semantic prompting) on the stock
SAM decoder, against PerSAM's patched transformer restated here from its description."""

from __future__ import annotations

import math

import numpy as np
import torch

from samic_vos.inference.baseline_prompters import IMAGE_MASK_VALUE, PerSamImagePrompter
from samic_vos.inference.prompter import Reference
from samic_vos.sam.guidance import DecoderGuidance, guided_decoding
from samic_vos.sam.models import build_sam
from samic_vos.sam.segmenter import SamSegmenter


def _attention(module, q, k, v, guide=None):
    q = module._separate_heads(module.q_proj(q), module.num_heads)
    k = module._separate_heads(module.k_proj(k), module.num_heads)
    v = module._separate_heads(module.v_proj(v), module.num_heads)
    attn = torch.softmax(q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1]), dim=-1)
    if guide is not None:
        attn = torch.softmax(attn + guide, dim=-1)
    return module.out_proj(module._recombine_heads(attn @ v))


def _block(layer, queries, keys, query_pe, key_pe, guide):
    if layer.skip_first_layer_pe:
        queries = _attention(layer.self_attn, queries, queries, queries)
    else:
        q = queries + query_pe
        queries = queries + _attention(layer.self_attn, q, q, queries)
    queries = layer.norm1(queries)
    attn = _attention(
        layer.cross_attn_token_to_image, queries + query_pe, keys + key_pe, keys, guide
    )
    queries = layer.norm2(queries + attn)
    queries = layer.norm3(queries + layer.mlp(queries))
    q, k = queries + query_pe, keys + key_pe
    keys = layer.norm4(keys + _attention(layer.cross_attn_image_to_token, k, q, queries))
    return queries, keys


def _persam_transformer(t, image, image_pe, tokens, guide, target):
    """PerSAM's patched ``TwoWayTransformer.forward``: ``queries += target`` before every block,
    in place, so before the first block it also changes ``point_embedding`` (the same tensor),
    the blocks' positional term; ``q += target`` before the final attention."""
    keys = image.flatten(2).permute(0, 2, 1)
    key_pe = image_pe.flatten(2).permute(0, 2, 1)
    point_embedding = tokens.clone()
    queries = point_embedding
    for layer in t.layers:
        queries += target  # first block: point_embedding itself
        queries, keys = _block(layer, queries, keys, point_embedding, key_pe, guide)
    q = queries + point_embedding
    q += target
    attn = _attention(t.final_attn_token_to_image, q, keys + key_pe, keys)
    return t.norm_final_attn(queries + attn), keys


def test_guided_decoding_is_persams_patched_transformer_and_leaves_the_decoder_stock():
    torch.manual_seed(0)
    sam = build_sam("tiny", random_init=True).eval()
    t = sam.mask_decoder.transformer
    image, image_pe = torch.randn(2, 32, 8, 8), torch.randn(2, 32, 8, 8)
    tokens = torch.randn(2, 7, 32)
    guidance = DecoderGuidance(attention=torch.rand(64), target=torch.randn(32))
    with torch.no_grad():
        before = t(image, image_pe, tokens)
        with guided_decoding(t, guidance):
            guided = t(image, image_pe, tokens)
        after = t(image, image_pe, tokens)
        with guided_decoding(t, None):
            unguided = t(image, image_pe, tokens)
        expected = _persam_transformer(
            t, image, image_pe, tokens, guidance.attention.reshape(1, 1, 1, -1), guidance.target
        )
    for ours, theirs in zip(guided, expected, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert not torch.allclose(guided[0], before[0], atol=1e-3)  # the guidance does change it
    for stock in (after, unguided):  # outside the block (or with None): the stock decoder
        assert all(torch.equal(a, b) for a, b in zip(stock, before, strict=True))
    assert not t._forward_pre_hooks and "forward" not in vars(t.layers[0].cross_attn_token_to_image)


def test_persam_image_recipe_guides_its_first_call_with_the_mean_feature_under_the_mask():
    torch.manual_seed(0)
    segmenter = SamSegmenter(build_sam("tiny", random_init=True), "cpu")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)  # not square: resized, padded
    ids = np.zeros((96, 128), np.uint8)
    ids[20:70, 30:90] = 1
    prompter = PerSamImagePrompter(segmenter)
    prompter.set_references([Reference(rgb, ids)], [{1}])
    segmenter.set_frame(rgb)
    embedding = segmenter.embedding
    # PerSAM's positions: the mask painted 128 in red, normalised as the image, on the grid
    image = segmenter.mask_as_image(ids == 1, IMAGE_MASK_VALUE)
    assert image.shape == (128, 128) and image[100:, :].max() == 0  # the padding stays 0
    small = torch.nn.functional.interpolate(image[None, None], size=(8, 8), mode="bilinear")
    feats = embedding.features[0].permute(1, 2, 0)[small[0, 0] > 0]
    assert 0 < len(feats) < 64
    unit, mean = prompter._targets[1]
    assert torch.allclose(mean, feats.mean(dim=0)) and torch.allclose(unit, mean / mean.norm())

    calls = []
    prompt = segmenter.prompt

    def recorded(*args, **kwargs):
        calls.append(kwargs)
        return prompt(*args, **kwargs)

    segmenter.prompt = recorded
    result, segmentation, logits = prompter.prompt_class(0, 1, (96, 128))
    first, second, third = calls
    guidance = first["guidance"]
    assert guidance.attention.shape == (64,) and 0 < guidance.attention.min()
    assert guidance.attention.max() < 1 and torch.equal(guidance.target, mean)
    assert first["multimask"] is False and "guidance" not in second and "guidance" not in third
    assert result.points.shape == (1, 2) and logits.shape == (1, 96, 128)
    assert np.array_equal(segmentation.mask, logits[0] > 0)
