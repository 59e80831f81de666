"""GPU check: every segmenter family's image encoder in fp32 against bf16 and fp16 (SAM and
MedSAM: Meta's encoder against ours, SDPA, ± torch.compile).

One file, meant for a machine with one CUDA GPU (under 10 minutes): SAM ViT-B and ViT-H,
HQ-SAM ViT-B, MedSAM ViT-B, SAM 2.1 hiera tiny and large, with random weights (ViT
relative-position tables drawn at random, σ 0.2, as SAM initialises them to zero), 20 frames
each (DAVIS bear frames if ``../shared/data`` is there,
else random 854×480 frames), through ``SamSegmenter`` as the jobs run it. Per variant: seconds
per frame after one warm-up frame (the warm-up, which includes any compilation, is shown
apart), peak GPU memory allocated while encoding (``torch.cuda.max_memory_allocated``, reset
per variant), the worst relative error of the embedding against Meta fp32 and the worst IoU
of the masks from the same prompts (one point, and three points, per frame).

Per model the reference is its family's fp32 run through the family's own encoder (the first
row). A family whose package is not installed is skipped with a line saying so.

Usage: python benchmarks/gpu_check.py [--frames 20] [--models vit_b,hq_vit_b,...]
       python benchmarks/gpu_check.py --device cpu --frames 2 \
           --models tiny,tiny_hq,tiny_medsam,tiny_sam2   (smoke run)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from samic_vos.runtime.errors import UserError
from samic_vos.sam.encoder import EncoderConfig
from samic_vos.sam.families import SEGMENTERS
from samic_vos.sam.models import build_named, randomize_relative_positions
from samic_vos.sam.names import family_of
from samic_vos.sam.segmenter import mask_iou

FRAMES = Path(__file__).resolve().parents[2] / "shared/data/DAVIS/JPEGImages/480p/bear"
MODELS = "vit_b,vit_h,hq_vit_b,medsam_vit_b,sam2.1_hiera_tiny,sam2.1_hiera_large"
# SAM's ViT (SAM, MedSAM): Meta's encoder and ours; HQ-SAM, SAM 2.1: their package's encoder.
VIT_VARIANTS: dict[str, EncoderConfig] = {
    "meta-fp32": EncoderConfig(implementation="reference", precision="fp32"),
    "sdpa-fp32": EncoderConfig(precision="fp32"),
    "sdpa-bf16": EncoderConfig(precision="bf16"),
    "sdpa-fp16": EncoderConfig(precision="fp16"),
    "sdpa-bf16-compile": EncoderConfig(precision="bf16", compile=True),
}
PACKAGE_VARIANTS: dict[str, EncoderConfig] = {
    "fp32": EncoderConfig(precision="fp32"),
    "bf16": EncoderConfig(precision="bf16"),
    "fp16": EncoderConfig(precision="fp16"),
}


def _frames(count: int) -> tuple[list[np.ndarray], str]:
    paths = sorted(FRAMES.glob("*.jpg"))[:count]
    if len(paths) == count:
        return [np.asarray(Image.open(p).convert("RGB")) for p in paths], "DAVIS bear"
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (480, 854, 3), dtype=np.uint8) for _ in range(count)], "random"


def build_or_skip(model: str) -> torch.nn.Module | None:
    """The random-weight ``model`` (torch seeded with 0 first), or ``None`` after a table row
    saying why it is skipped (its family's package is not installed)."""
    torch.manual_seed(0)
    try:
        return build_named(model)
    except UserError as err:
        print(f"| {model} | skipped: {err} |", flush=True)
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(
    model: str, sam, config: EncoderConfig, frames: list[np.ndarray], device: torch.device
) -> dict:
    segmenter = SEGMENTERS[family_of(model)](sam, device, config)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, embeddings, masks = [], [], []
    height, width = frames[0].shape[:2]
    prompts = [np.array([[width / 2, height / 2]])]
    prompts.append(
        np.array([[width / 3, height / 3], [width / 2, height / 2], [width / 2, 0.7 * height]])
    )
    for rgb in frames:
        _sync(device)
        start = time.perf_counter()
        embedding = segmenter.embed(rgb)
        _sync(device)
        seconds.append(time.perf_counter() - start)
        segmenter.set_embedding(embedding)
        embeddings.append(embedding.features.cpu())
        masks += [segmenter.segment([points]).mask for points in prompts]
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    )
    return {"seconds": seconds, "peak_mib": peak, "embeddings": embeddings, "masks": masks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a smoke run")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: error: no CUDA device here; run it on a GPU machine, "
            "or pass --device cpu --frames 2 --models tiny for a smoke run",
            file=sys.stderr,
        )
        return 2
    if args.frames < 2:
        parser.error("--frames must be at least 2 (the first is warm-up)")
    frames, source = _frames(args.frames)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}, torch {torch.__version__}, {args.frames} {source} frames "
        f"{frames[0].shape[1]}x{frames[0].shape[0]}; s/frame over frames 2..{args.frames}"
    )
    print(
        "| model | variant | s/frame | speed-up vs fp32 (first row) | first frame (s) "
        "| peak GPU MiB | embedding rel. error | mask IoU (worst) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        sam = build_or_skip(model)
        if sam is None:
            continue
        family = family_of(model)
        if family in ("sam", "medsam", "hq"):
            randomize_relative_positions(sam, std=0.2)
        variants = VIT_VARIANTS if family in ("sam", "medsam") else PACKAGE_VARIANTS
        sam = sam.to(device)
        results = {
            variant: _run(model, sam, config, frames, device)
            for variant, config in variants.items()
        }
        ref = next(iter(results.values()))
        ref_time = float(np.mean(ref["seconds"][1:]))
        for variant, r in results.items():
            per_frame = float(np.mean(r["seconds"][1:]))
            error = max(
                float((o - m).norm() / m.norm())
                for o, m in zip(r["embeddings"], ref["embeddings"], strict=True)
            )
            iou = min(mask_iou(o, m) for o, m in zip(r["masks"], ref["masks"], strict=True))
            print(
                f"| {model} | {variant} | {per_frame:.4f} | {ref_time / per_frame:.2f}x "
                f"| {r['seconds'][0]:.1f} | {r['peak_mib']:.0f} | {error:.1e} | {iou:.4f} |",
                flush=True,
            )
        del sam, results
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
