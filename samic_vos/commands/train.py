"""``samic-vos train``: train SAMIC on DAVIS, SAMBOX annotations or a few-shot image dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from samic_vos.commands import common
from samic_vos.data import names as data_names

# Every tested few-shot layout trains through --fewshot; SAMBOX folders through --sambox.
FEWSHOT_KINDS = tuple(kind for kind in data_names.TEST_KINDS if kind != "sambox")

DESCRIPTION = """\
Train the SAMIC network (the frozen ResNet-50 backbone stays fixed) on pairs of frames
(t-1 -> t) picked by optical flow from DAVIS videos, on a folder of SAMBOX annotations, or on
pairs of images of one class of a few-shot dataset (--fewshot KIND --root ROOT).
The target heat maps come from points inside the ground-truth masks.

Writes into OUT: config.yaml (the resolved settings), run.json (the run's manifest: another
training into OUT is refused), latest.pt and best.pt (checkpoints with the config, the package
version, the metrics and the resume state), history.json (the loss terms of every epoch).
Stops after train.patience epochs without a better validation loss.

Several GPUs or machines: launch with torchrun, e.g.
  torchrun --nproc_per_node 4 $(which samic-vos) train --davis-root DAVIS -o runs/x
Each process trains on a shard of the pairs; the global batch is --batch-size x processes.
"""

EPILOG = """\
examples:
  samic-vos train --davis-root ../shared/data/DAVIS --year 2016 --set train -o runs/davis16
  samic-vos train --davis-root DAVIS --year 2016 -o runs/davis16 --resume
  samic-vos train --sambox my_annotations/ -o runs/mine --config configs/train_davis.yaml
  samic-vos train --fewshot fss1000 --root FSS-1000 --train-fraction 0.2 -o runs/fss
  samic-vos train --fewshot pascal5i --fold 0 --root VOC2012 -o runs/pascal-fold0
  samic-vos train --fewshot kvasir --root Kvasir-SEG -o runs/kvasir
"""


def _square(text: str) -> list[str]:
    return [text, text]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the SAMIC network on DAVIS, SAMBOX annotations or few-shot image sets",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common.add_out(parser, "output folder (checkpoints, config.yaml, history.json)", required=True)
    parser.add_argument(
        "--sambox", type=Path, metavar="DIR", help="train on this folder of SAMBOX annotations"
    )
    common.add_davis(parser, root_required=False, split="train")
    _add_fewshot(parser)
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
        help="continue the training in OUT (OUT/latest.pt; nothing there yet: start it) with its "
        "settings (--epochs, the device, threads and input paths may change), or the one saved in "
        "CKPT",
    )
    group.add_argument(
        "--init-hsnet",
        type=Path,
        metavar="CKPT",
        help="start the learner from an HSNet ResNet-50 checkpoint (FSS-1000 or PASCAL-5i)",
    )
    group.add_argument(
        "--force", action="store_true", help="start afresh over a training already in OUT"
    )
    common.add_models(parser, sam=False, samic_checkpoint=False)
    common.add_device(parser)
    common.add_common(parser)
    parser.set_defaults(func=run)


def _add_fewshot(parser: argparse.ArgumentParser) -> None:
    """``--fewshot KIND --root ROOT`` and ``--train-fraction`` (key ``fewshot.*``)."""
    group = parser.add_argument_group("few-shot images")
    group.add_argument(
        "--fewshot",
        choices=FEWSHOT_KINDS,
        help="train on image pairs of one class of this few-shot dataset's training images "
        "(needs --root; layouts in docs/fewshot_datasets.md)",
    )
    group.add_argument("--root", type=Path, metavar="ROOT", help="the few-shot dataset's folder")
    common.config_flag(
        group,
        "--train-fraction",
        key="fewshot.train_fraction",
        metavar="F",
        help="share of each class's images that make pairs (default 0.2; drawn by fewshot.seed)",
    )
    common.config_flag(
        group,
        "--fold",
        key="fewshot.fold",
        metavar="F",
        help="PASCAL-5i/COCO-20i: the fold held out, 0..3 (trains on the other three; default 0)",
    )


def run(args: argparse.Namespace) -> int:
    from samic_vos.data.davis import require_davis_root
    from samic_vos.data.sambox_format import SAMBOX_FOLDER
    from samic_vos.runtime.errors import UserError
    from samic_vos.runtime.input_paths import require_input

    if (args.fewshot is None) != (args.root is None):
        raise UserError("--fewshot KIND and --root ROOT go together: give both, or neither")
    if [args.davis_root, args.sambox, args.fewshot].count(None) != 2:
        raise UserError(
            "give exactly one data source: --davis-root ROOT, --sambox DIR or --fewshot KIND"
        )
    if common.given(args, "--fold") and args.fewshot not in ("pascal5i", "coco20i"):
        raise UserError(f"--fold is PASCAL-5i's and COCO-20i's; --fewshot {args.fewshot} has none")
    if args.resume is not None and args.force:
        raise UserError("--resume and --force exclude each other: continue, or start afresh")
    if args.resume is not None and args.init_hsnet is not None:
        raise UserError("--resume and --init-hsnet exclude each other: a resumed run has weights")
    # The data source exists: checked before torch is imported (a mistake costs no start-up).
    require_davis_root(args.davis_root)
    require_input(args.sambox, SAMBOX_FOLDER, kind="folder")
    common.require_dataset_root(args.root)
    from samic_vos.training.job import TrainJobConfig, run_training

    config = common.job_config(TrainJobConfig(), args)
    common.refuse_ignored_flags(args, "samic")  # train makes a SAMIC network
    result = run_training(
        config,
        out_dir=args.out,
        davis_root=args.davis_root,
        sambox=args.sambox,
        resume=args.resume,
        force=args.force,
        backbone_weights=args.backbone_weights,
        init_hsnet=args.init_hsnet,
        fewshot=None if args.fewshot is None else (args.fewshot, args.root),
    )
    best = result.out_dir / "best.pt"
    if result.is_main and best.is_file():
        common.stdout(str(best))  # the checkpoint to use: lowest validation loss
    return 0
