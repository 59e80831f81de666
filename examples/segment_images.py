"""Segment, in new images, the classes of labelled reference images with samic-vos's Python API.

    python examples/segment_images.py --ref IMG --ref-mask MASK [--ref ...] TARGET... -o OUT

Writes OUT/<target name>.png (palette: ids as the reference masks' classes, or one id per
instance with --instances) and prints each class's points, (x, y) pixels, and SAM's confidence.
Without --samic, SAMIC is adapted on the references (on ResNet-50's weights from the cache, or
--backbone-weights FILE) and saved as OUT/samic_adapted.pt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import samic_vos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", type=Path, nargs="+", help="images to segment")
    parser.add_argument("--ref", type=Path, action="append", required=True, help="reference")
    parser.add_argument("--ref-mask", type=Path, action="append", required=True, help="its mask")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--instances", action="store_true", help="one id per instance")
    parser.add_argument(
        "--sam-model",
        help="segmenter, as samic-vos --sam-model: vit_b ... (default: the checkpoint's)",
    )
    parser.add_argument("--sam-checkpoint", type=Path, help="SAM weights (default: the cache)")
    parser.add_argument("--samic", type=Path, help="trained SAMIC checkpoint")
    parser.add_argument(
        "--backbone-weights", type=Path, help="ResNet-50 weights, without --samic (default: cache)"
    )
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu")
    args = parser.parse_args(argv)
    if len(args.ref) != len(args.ref_mask):
        parser.error("give one --ref-mask per --ref, in the same order")
    try:
        segmenter = samic_vos.ImageSegmenter.load(
            args.sam_model,
            sam_checkpoint=args.sam_checkpoint,
            samic=args.samic,
            backbone_weights=args.backbone_weights,
            device=args.device,
            adaptation_dir=args.out,
            progress=True,
        )
        segmenter.set_references(list(zip(args.ref, args.ref_mask, strict=True)))
        args.out.mkdir(parents=True, exist_ok=True)
        for target, found in zip(args.targets, segmenter.segment(args.targets), strict=True):
            samic_vos.write_mask(
                args.out / f"{target.stem}.png", found.instances if args.instances else found.ids
            )
            for class_id, result in found.classes.items():
                points = result.points.round(1).tolist()
                print(target.name, class_id, points, round(result.confidence, 3))
    except (samic_vos.UserError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
