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

Collections: several VIDEOs, each with its --first-mask (repeated, same order), or one
manifest file LIST.csv / LIST.jsonl (columns video, first_mask, optional masks, optional name;
paths relative to the manifest) track each video into OUT/<name>/ (the outputs above, resumed
per video), the models loaded once. A video that fails is named in one line and the others go
on; the exit status is then 2. Shards: --shard I/N, torchrun (RANK/WORLD_SIZE; LOCAL_RANK
picks the GPU) or a Slurm array (SLURM_ARRAY_TASK_ID/COUNT) take the videos dealt by frame
count; the last to finish (or --merge) writes OUT/summary.json (and with --format coco,
OUT/coco.json).
"""

EPILOG = """\
examples:
  samic-vos track video.mp4 --first-mask first.png -o runs/video --overlay runs/video.mp4
  samic-vos track frames/ --masks annotations/ -o runs/judo --samic samic.pt
  samic-vos track videos.csv -o runs/videos --samic samic.pt --format coco
  torchrun --nproc_per_node 8 $(which samic-vos) track videos.csv -o runs/videos --samic s.pt
  sbatch --array=0-31 --gres=gpu:1 --wrap "samic-vos track videos.csv -o runs/videos --samic s.pt"
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="segment the objects of a first-frame mask through a video",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "videos",
        type=Path,
        nargs="+",
        metavar="VIDEO",
        help="video file or folder of frames (several: a collection), or a manifest .csv/.jsonl",
    )
    parser.add_argument(
        "--first-mask",
        type=Path,
        action="append",
        default=[],
        metavar="MASK.png",
        help="mask of frame 0 (object ids) as players show it (a phone video turned upright); "
        "one per VIDEO, same order",
    )
    parser.add_argument(
        "--masks",
        type=Path,
        metavar="DIR",
        help="masks of later frames (and of frame 0), named like the frames",
    )
    common.add_out(
        parser,
        "output folder (default: runs/<video name>; a collection: runs/<manifest name>, or "
        "runs/videos for several VIDEOs)",
    )
    parser.add_argument(
        "--overlay", type=Path, metavar="OUT.mp4", help="also write an overlay video"
    )
    parser.add_argument(
        "--force", action="store_true", help="redo a finished run, or replace another run in OUT"
    )
    common.add_prompter(parser, "prompter", video=True)
    common.add_format(parser)
    common.add_shards(parser, "track")
    common.add_models(parser)
    common.add_device(parser)
    common.add_encoder(parser)
    common.add_backend(parser)
    common.add_common(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from samic_vos.jobs.track_inputs import TrackInputs, check_inputs
    from samic_vos.jobs.video_manifest import is_manifest
    from samic_vos.runtime.errors import UserError

    if len(args.videos) > 1 or is_manifest(args.videos[0]):
        return _collection(args)
    if args.shard is not None or args.merge:
        raise UserError("--shard and --merge take a collection: several videos or a manifest")
    if len(args.first_mask) > 1:
        raise UserError("--first-mask given more than once for one video; give it once")
    video = args.videos[0]
    inputs = TrackInputs(
        video=video,
        out_dir=args.out or Path("runs") / video.stem,
        first_mask=args.first_mask[0] if args.first_mask else None,
        masks_dir=args.masks,
        overlay=args.overlay,
        samic_checkpoint=args.samic,
        sam_checkpoint=args.sam_checkpoint,
        backbone_weights=args.backbone_weights,
        force=args.force,
        format=args.format,
    )
    check_inputs(inputs)  # before torch is imported: a mistake costs no start-up
    from samic_vos.jobs.track import TrackConfig
    from samic_vos.pipelines.track import run_track

    config = common.job_config(TrackConfig(), args)
    common.refuse_ignored_flags(args, config.prompter)
    from samic_vos.runtime.shards import resolve_shard

    launched = resolve_shard(None)  # torchrun or a Slurm array around one video: one tracks it
    if launched.index > 0:
        log.info(
            "one video: %s shard %d of %d has nothing to do (shard 0 tracks it)",
            launched.source,
            launched.index,
            launched.count,
        )
        return 0
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


def _collection(args: argparse.Namespace) -> int:
    """Several videos or a manifest: one run per video in OUT/<name>/."""
    from samic_vos.jobs.video_manifest import given_videos, is_manifest, read_manifest_file
    from samic_vos.runtime.errors import UserError

    if args.masks is not None or args.overlay is not None:
        raise UserError(
            "--masks and --overlay take one video; in a collection give each video's masks "
            "folder in the manifest's `masks` column"
        )
    manifest = args.videos[0] if is_manifest(args.videos[0]) else None
    if manifest is not None:
        if len(args.videos) > 1 or args.first_mask:
            raise UserError(f"{manifest}: a manifest lists the videos and masks; give it alone")
        items = read_manifest_file(manifest)
    else:
        items = given_videos(args.videos, args.first_mask)
    from samic_vos.jobs.track import TrackConfig
    from samic_vos.pipelines.track import CollectionInputs, run_track_collection

    config = common.job_config(TrackConfig(), args)
    common.refuse_ignored_flags(args, config.prompter)
    inputs = CollectionInputs(
        items=items,
        out_dir=args.out or Path("runs") / (manifest.stem if manifest else "videos"),
        manifest=manifest,
        samic_checkpoint=args.samic,
        sam_checkpoint=args.sam_checkpoint,
        backbone_weights=args.backbone_weights,
        force=args.force,
        shard=args.shard,
        merge=args.merge,
        format=args.format,
    )
    summary = run_track_collection(inputs, config, progress=True)
    if summary.mine:
        log.info(
            "tracked %d of %d videos here (%d frames computed now); %d of the collection remain",
            len(summary.mine) - len(summary.failed),  # a failed video is named, not counted
            summary.videos,
            summary.computed,
            summary.remaining,
        )
    if summary.failed:
        log.error(
            "%d of %d videos failed (named above); fix them and run again",
            len(summary.failed),
            summary.videos,
        )
        return 2
    return 0
