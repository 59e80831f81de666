"""`samic-vos segment --ref IMG --ref-mask MASK TARGET... -o OUT`: few-shot image segmentation."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from samic_vos.commands import common

log = logging.getLogger(__name__)

# Exit status when some targets could not be read: that of every input mistake (the readable
# targets are written, whole; a rerun retries the others).
UNREADABLE_STATUS = 2

DESCRIPTION = f"""\
Segment, in new images, the classes of one or a few labelled reference images. Per class,
SAMIC predicts a heat map of point prompts on the target from each reference (K references:
K heat maps, averaged), each peak prompts SAM, and the class mask is the union of the masks
(--instances keeps each peak's instance apart). --prompter persam uses PerSAM's training-free
recipe instead.

References: --ref IMG --ref-mask MASK pairs (repeat both, in the same order; masks: palette,
grayscale or binary PNG of the image's size; each id of a palette mask is its own class), and/or
--ref-sambox FILE.sambox.json (the points a person clicked in SAMBOX are the prompts).
TARGETs: image files, folders (searched recursively, natural order), globs (quote them) or
list files (*.txt: one image path a line, relative to the list).
Targets sharing a file name are named by their path (cats/1.jpg -> cats__1).

Outputs in OUT: masks/<name>.png (palette; ids as the reference classes, or 1..M instances),
prompts.jsonl (points, heat values and SAM's confidence per image and class), overlays/<name>.jpg
(--overlay), config.yaml and run.json. Without --samic, SAMIC is first adapted on the
references and saved as OUT/samic_adapted.pt.

An interrupted run continues when run again with the same inputs and settings into the same OUT
(finished targets are skipped); a finished one is not redone (--force redoes it). Shards:
--shard I/N, or launched by torchrun (RANK/WORLD_SIZE; LOCAL_RANK picks the GPU) or as a Slurm
array (SLURM_ARRAY_TASK_ID/COUNT), each segmenting its share of the targets (balanced by
pixels) into the same OUT; the last to finish (or --merge) writes prompts.jsonl (and coco.json).
Exit status: 0 when every target was segmented; {UNREADABLE_STATUS} when some targets could not
be read (each named on stderr at the end, one line each; the others are written, and a rerun
retries them), and {UNREADABLE_STATUS} for any other input mistake (one line, nothing written).
"""

EPILOG = """\
examples:
  samic-vos segment --ref ref.jpg --ref-mask ref.png photos/ -o runs/photos --overlay
  samic-vos segment --ref a.jpg --ref-mask a.png --ref b.jpg --ref-mask b.png 'shots/*.jpg' \\
      -o runs/shots --samic samic.pt --instances
  torchrun --nproc_per_node 8 $(which samic-vos) segment --ref a.jpg --ref-mask a.png \\
      photos/ -o runs/photos --samic samic.pt --format coco
  sbatch --array=0-7 --wrap "samic-vos segment --ref a.jpg --ref-mask a.png photos/ -o runs/p \\
      --samic samic.pt"
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment new images from one or a few labelled reference images",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="image files, folders, globs or list files (*.txt) to segment",
    )
    group = parser.add_argument_group("references")
    group.add_argument(
        "--ref", type=Path, action="append", default=[], metavar="IMG", help="a reference image"
    )
    group.add_argument(
        "--ref-mask",
        type=Path,
        action="append",
        default=[],
        metavar="MASK",
        help="its mask (one per --ref, same order)",
    )
    group.add_argument(
        "--ref-sambox",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a SAMBOX annotation as a reference (its clicks are the prompts)",
    )
    common.add_out(parser, "output folder (default: runs/segment)")
    common.add_prompter(parser, "prompter", video=False)
    common.config_flag(
        parser,
        "--instances",
        key="instances",
        switch=True,
        help="masks with one id per instance (1..M) instead of one per class",
    )
    common.config_flag(
        parser, "--overlay", key="overlays", switch=True, help="also write OUT/overlays/<name>.jpg"
    )
    common.config_flag(
        parser,
        "--batch-size",
        key="tracker.batch_size",
        metavar="N",
        help="targets per backbone batch, and SAMIC pairs per batch (default 8)",
    )
    parser.add_argument(
        "--force", action="store_true", help="redo a finished run, or replace another run in OUT"
    )
    common.add_format(parser)
    common.add_shards(parser, "segment")
    common.add_models(parser)
    common.add_device(parser)
    common.add_encoder(parser)
    common.add_common(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from samic_vos.jobs.segment_inputs import checked_inputs

    out = args.out or Path("runs") / "segment"
    # The checks that need no torch, before it is imported: a mistake costs no start-up.
    checked_inputs(args.targets, out, args.ref, args.ref_mask, args.ref_sambox, args.samic)
    from samic_vos.jobs.segment import SegmentConfig
    from samic_vos.pipelines.segment import SegmentInputs, run_segment

    config = common.job_config(SegmentConfig(), args)
    common.refuse_ignored_flags(args, config.prompter)
    inputs = SegmentInputs(
        targets=list(args.targets),
        out_dir=out,
        ref_images=list(args.ref),
        ref_masks=list(args.ref_mask),
        ref_sambox=list(args.ref_sambox),
        samic_checkpoint=args.samic,
        sam_checkpoint=args.sam_checkpoint,
        backbone_weights=args.backbone_weights,
        force=args.force,
        shard=args.shard,
        merge=args.merge,
        format=args.format,
    )
    summary = run_segment(inputs, config, progress=True)
    if summary.computed:
        log.info(
            "wrote %d of %d masks to %s (%d computed now)",
            summary.written,
            summary.targets,
            summary.out_dir / "masks",
            summary.computed,
        )
    if summary.remaining and not summary.unreadable:
        log.info(
            "%d of %d targets remain for the other shards; the last to finish (or --merge) "
            "writes prompts.jsonl",
            summary.remaining,
            summary.targets,
        )
    if summary.unreadable:
        log.error(
            "%d of %d targets could not be read (named above); run again once they are fixed",
            len(summary.unreadable),
            summary.targets,
        )
        return UNREADABLE_STATUS
    return 0
