"""``samic-vos train``: train SAMIC on DAVIS or on SAMBOX annotations."""

from __future__ import annotations

import argparse
from pathlib import Path

from samic_vos.commands import common

DESCRIPTION = """\
Train the SAMIC network (the frozen ResNet-50 backbone stays fixed) on pairs of frames
(t-1 -> t) picked by optical flow from DAVIS videos, or on a folder of SAMBOX annotations.
The target heat maps come from points inside the ground-truth masks.

Writes into OUT: config.yaml (the resolved settings), latest.pt and best.pt (checkpoints
with the config, the package version, the metrics and the resume state), history.json (the
loss terms of every epoch). Stops after `patience` epochs without a better validation loss.

Several GPUs or machines: launch with torchrun, e.g.
  torchrun --nproc_per_node 4 $(which samic-vos) train --davis-root DAVIS -o runs/x
Each process trains on a shard of the pairs; the global batch is --batch-size x processes.
"""

EPILOG = """\
examples:
  samic-vos train --davis-root ../shared/data/DAVIS --year 2016 --set train -o runs/davis16
  samic-vos train --davis-root DAVIS --year 2016 -o runs/davis16 --resume
  samic-vos train --sambox my_annotations/ -o runs/mine --config configs/train_davis.yaml
"""


def _square(text: str) -> list[str]:
    return [text, text]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the SAMIC network on DAVIS or SAMBOX annotations",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common.add_out(parser, "output folder (checkpoints, config.yaml, history.json)", required=True)
    parser.add_argument(
        "--sambox", type=Path, metavar="DIR", help="train on this folder of SAMBOX annotations"
    )
    common.add_davis(parser, root_required=False)
    group = parser.add_argument_group("training")
    common.config_flag(group, "--epochs", key="train.max_epochs", metavar="N", help="most epochs")
    common.config_flag(
        group,
        "--batch-size",
        key="train.batch_size",
        metavar="N",
        help="pairs per step and process",
    )
    common.config_flag(
        group,
        "--input-size",
        key="network.input_size",
        metavar="S",
        convert=_square,
        help="network input S x S pixels",
    )
    common.config_flag(group, "--seed", key="train.seed", metavar="N", help="random seed")
    group.add_argument(
        "--resume",
        nargs="?",
        const=True,
        metavar="CKPT",
        help="continue the training in OUT (OUT/latest.pt), or the one saved in CKPT",
    )
    group.add_argument(
        "--force", action="store_true", help="start afresh over a training already in OUT"
    )
    common.add_models(parser, sam=False, samic_checkpoint=False)
    common.add_device(parser)
    common.add_common(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from samic_vos.errors import UserError
    from samic_vos.pipelines.train import TrainJobConfig, run_training

    if (args.davis_root is None) == (args.sambox is None):
        raise UserError("give exactly one data source: --davis-root ROOT or --sambox DIR")
    if args.resume is not None and args.force:
        raise UserError("--resume and --force exclude each other: continue, or start afresh")
    config = common.job_config(TrainJobConfig(), args)
    result = run_training(
        config,
        out_dir=args.out,
        davis_root=args.davis_root,
        sambox=args.sambox,
        resume=args.resume,
        force=args.force,
        backbone_weights=args.backbone_weights,
    )
    best = result.out_dir / "best.pt"
    if result.is_main and best.is_file():
        common.stdout(str(best))  # the checkpoint to use: lowest validation loss
    return 0
