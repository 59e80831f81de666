"""``samic-vos train``: train SAMIC on DAVIS or on SAMBOX annotations."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train the SAMIC network (the frozen ResNet-50 backbone stays fixed) on pairs of frames
(t-1 -> t) picked by optical flow from DAVIS videos, or on a folder of SAMBOX annotations.
The target heat maps come from points inside the ground-truth masks.

Writes into OUT_DIR: config.yaml (the resolved settings), latest.pt and best.pt (checkpoints
with the config, the package version, the metrics and the resume state), history.json (the
loss terms of every epoch). Stops after `patience` epochs without a better validation loss.

Several GPUs or machines: launch with torchrun, e.g.
  torchrun --nproc_per_node 4 $(which samic-vos) train --davis-root DAVIS -o runs/x
Each process trains on a shard of the pairs; the global batch is --batch-size x processes.
"""

EPILOG = """\
examples:
  samic-vos train --davis-root ../shared/data/DAVIS --year 2016 --split train -o runs/davis16
  samic-vos train --davis-root DAVIS -o runs/davis16 --resume runs/davis16/latest.pt
  samic-vos train --sambox my_annotations/ -o runs/mine --config configs/train_davis.yaml
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the SAMIC network on DAVIS or SAMBOX annotations",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--davis-root", metavar="ROOT", help="DAVIS folder (JPEGImages/, ...)")
    source.add_argument("--sambox", metavar="DIR", help="folder of SAMBOX annotations")
    parser.add_argument("--year", choices=("2016", "2017"), help="DAVIS year (default 2016)")
    parser.add_argument("--split", help="DAVIS split to train on (default train)")
    parser.add_argument(
        "--sequences", metavar="A,B", help="train on these DAVIS sequences only (comma-separated)"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--config", metavar="YAML", help="settings overriding the defaults")
    parser.add_argument("--epochs", type=int, metavar="N", help="maximum number of epochs")
    parser.add_argument(
        "--batch-size", type=int, metavar="N", help="pairs per step and process (default 4)"
    )
    parser.add_argument(
        "--input-size", type=int, metavar="S", help="network input S x S pixels (default 224)"
    )
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    parser.add_argument(
        "--resume", metavar="CKPT", help="continue the run saved in CKPT (e.g. OUT_DIR/latest.pt)"
    )
    parser.add_argument(
        "--init-hsnet",
        metavar="CKPT",
        help="start the learner from an HSNet ResNet-50 checkpoint (FSS-1000 or PASCAL-5i)",
    )
    backbone = parser.add_mutually_exclusive_group()
    backbone.add_argument(
        "--backbone-weights", metavar="PATH", help="torchvision ResNet-50 ImageNet state dict"
    )
    backbone.add_argument(
        "--random-backbone",
        action="store_true",
        help="randomly initialised backbone instead of ImageNet weights (experiments only)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)"
    )
    parser.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The command-line flags as config overrides (they win over --config)."""
    out: dict[str, dict[str, object]] = {"data": {}, "train": {}, "net": {}}
    if args.year:
        out["data"]["year"] = args.year
    if args.split:
        out["data"]["split"] = args.split
    if args.sequences:
        out["data"]["sequences"] = [s for s in args.sequences.split(",") if s]
    if args.epochs is not None:
        out["train"]["max_epochs"] = args.epochs
    if args.batch_size is not None:
        out["train"]["batch_size"] = args.batch_size
    if args.seed is not None:
        out["train"]["seed"] = args.seed
    if args.input_size is not None:
        out["net"]["input_size"] = (args.input_size, args.input_size)
    if args.random_backbone:
        out["net"]["backbone"] = "random"
    return {k: v for k, v in out.items() if v}


def run(args: argparse.Namespace) -> int:
    from samic_vos.config import apply_overrides, load_config
    from samic_vos.pipelines.train import TrainJobConfig, run_training

    config = load_config(TrainJobConfig(), args.config)
    config = apply_overrides(config, _overrides(args), "command line")
    result = run_training(
        config,
        out_dir=args.output,
        davis_root=args.davis_root,
        sambox=args.sambox,
        resume=args.resume,
        backbone_weights=args.backbone_weights,
        init_hsnet=args.init_hsnet,
        device=args.device,
    )
    best = result.out_dir / "best.pt"
    if result.is_main and best.is_file():
        print(best)  # the checkpoint to use: lowest validation loss
    return 0
