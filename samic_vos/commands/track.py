"""`samic-vos track VIDEO --first-mask MASK -o OUT`: segment objects through a video."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Segment the objects of a first-frame mask through a video, causally: frame t-1 and its
prompts are the reference for frame t. SAMIC predicts point prompts, SAM turns them into masks.

VIDEO is a video file (mp4, ...) or a folder of frames (JPEG/PNG, in name order). The first
mask is a palette PNG (0 background, 1..K objects, as DAVIS-2017) or a binary PNG, of the size
of the frames. Outputs in OUT: masks/<frame>.png (DAVIS palette, scorable with
`samic-vos eval davis`), prompts.jsonl, config.yaml. Without --samic, SAMIC is first adapted on
frame 0 and saved as OUT/samic_adapted.pt (pass it with --samic to reuse it). Missing SAM or
ResNet-50 weights are downloaded into the cache (see `samic-vos weights`).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="segment the objects of a first-frame mask through a video",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", type=Path, help="video file or folder of frames")
    parser.add_argument(
        "--first-mask", type=Path, required=True, help="mask PNG of frame 0 (object ids)"
    )
    parser.add_argument("-o", "--out", type=Path, help="output folder (default: runs/<video name>)")
    parser.add_argument("--overlay", type=Path, help="also write an overlay video (H.264 mp4)")
    parser.add_argument("--samic", type=Path, help="SAMIC checkpoint (else: adapt on frame 0)")
    parser.add_argument(
        "--sam-model", choices=("vit_b", "vit_l", "vit_h"), help="SAM model (default vit_b)"
    )
    parser.add_argument("--sam-checkpoint", type=Path, help="local SAM checkpoint file")
    parser.add_argument("--backbone-weights", type=Path, help="local ResNet-50 ImageNet weights")
    parser.add_argument(
        "--random-backbone",
        action="store_true",
        help="adapt SAMIC on a randomly initialised backbone (experiments only)",
    )
    parser.add_argument("--device", help="auto | cuda | mps | cpu (default auto)")
    parser.add_argument(
        "--backend", choices=("auto", "decord", "pyav", "folder"), help="frame decoder"
    )
    parser.add_argument("--config", type=Path, help="YAML file overriding the defaults")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from samic_vos.config import load_config
    from samic_vos.pipelines.track import TrackConfig, TrackInputs, run_track

    config = load_config(TrackConfig(), args.config)
    for name in ("sam_model", "device", "backend"):  # flags override the config file
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    out = args.out or Path("runs") / args.video.stem
    inputs = TrackInputs(
        video=args.video,
        first_mask=args.first_mask,
        out_dir=out,
        overlay=args.overlay,
        samic_checkpoint=args.samic,
        sam_checkpoint=args.sam_checkpoint,
        backbone_weights=args.backbone_weights,
        random_backbone=args.random_backbone,
    )
    count = run_track(inputs, config)
    print(f"wrote {count} masks to {out / 'masks'}")
    if args.overlay:
        print(f"wrote the overlay video {args.overlay}")
    return 0
