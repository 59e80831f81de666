"""`samic-vos track VIDEO --first-mask MASK -o OUT`: segment objects through a video."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from samic_vos.commands import common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Segment the objects of a first-frame mask through a video, causally: frame t-1 and its
prompts are the reference for frame t. SAMIC predicts point prompts, SAM turns them into masks.

VIDEO is a video file (mp4, ...) or a folder of frames (JPEG/PNG, in name order). Masks are
palette PNGs (0 background, 1..K objects, as DAVIS-2017) or binary PNGs, of the frames' size.
--masks DIR adds masks on later frames (named like the frames: 00005.png): their objects start,
or restart, there. Outputs in OUT: masks/<frame>.png (DAVIS palette, scorable with
`samic-vos eval davis`), prompts.jsonl, config.yaml (what ran) and run.json (the manifest).
Without --samic, SAMIC is first adapted on frame 0 and saved as OUT/samic_adapted.pt.

An interrupted run continues where it stopped when run again with the same inputs and
settings into the same OUT; a finished one is not redone (--force redoes it). Missing SAM or
ResNet-50 weights are downloaded into the cache (see `samic-vos weights`).
"""

EPILOG = """\
examples:
  samic-vos track video.mp4 --first-mask first.png -o runs/video --overlay runs/video.mp4
  samic-vos track frames/ --masks annotations/ -o runs/judo --samic samic.pt
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="segment the objects of a first-frame mask through a video",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", type=Path, metavar="VIDEO", help="video file or folder of frames")
    parser.add_argument(
        "--first-mask", type=Path, metavar="MASK.png", help="mask of frame 0 (object ids)"
    )
    parser.add_argument(
        "--masks",
        type=Path,
        metavar="DIR",
        help="masks of later frames (and of frame 0), named like the frames",
    )
    common.add_out(parser, "output folder (default: runs/<video name>)")
    parser.add_argument(
        "--overlay", type=Path, metavar="OUT.mp4", help="also write an overlay video"
    )
    parser.add_argument(
        "--force", action="store_true", help="redo a finished run, or replace another run in OUT"
    )
    common.add_models(parser)
    common.add_device(parser)
    common.add_encoder(parser)
    common.add_backend(parser)
    common.add_common(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from samic_vos.jobs.track_inputs import TrackInputs, check_inputs

    inputs = TrackInputs(
        video=args.video,
        out_dir=args.out or Path("runs") / args.video.stem,
        first_mask=args.first_mask,
        masks_dir=args.masks,
        overlay=args.overlay,
        samic_checkpoint=args.samic,
        sam_checkpoint=args.sam_checkpoint,
        backbone_weights=args.backbone_weights,
        force=args.force,
    )
    check_inputs(inputs)  # before torch is imported: a mistake costs no start-up
    from samic_vos.jobs.track import TrackConfig
    from samic_vos.pipelines.track import run_track

    config = common.job_config(TrackConfig(), args)
    common.refuse_ignored_flags(args, config.prompter)
    summary = run_track(inputs, config, progress=True)
    if summary.computed:
        log.info(
            "wrote %d masks to %s (%d computed now)",
            summary.frames,
            summary.out_dir / "masks",
            summary.computed,
        )
    if args.overlay and summary.state != "finished":
        log.info("wrote the overlay video %s", args.overlay)
    return 0
