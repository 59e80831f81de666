"""``samic-vos bench paper``: every column of SAMIC's Table 1 whose data is present, one table."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
from pathlib import Path

from samic_vos.commands import common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Run every column of SAMIC's Table 1 whose dataset is under ROOT (the folder `samic-vos data
download --root ROOT` fills): COCO-20i (ROOT/COCO2014) and Pascal-5i (ROOT/VOC2012 with
SegmentationClassAug), all 4 folds each, FSS-1000, PerSeg, TSMU (ROOT/TSMU, its LabelMe
export), NWPU VHR-10 and Kvasir-SEG through `bench fewshot`, DAVIS-16 and DAVIS-17 val
(ROOT/davis-2016-trainval-480p, ROOT/davis-2017-trainval-480p) through `bench davis`, each
into OUT/<column>[/fold<F>] with its own report. Then write one table, our row beside SAMIC's,
PerSAM's and Matcher's published rows, absent columns marked "no data": OUT/table1.md,
OUT/scores.json, OUT/report.html.

The network: --samic CKPT for every column, or --train (each DAVIS column trains on its own
train set; the few-shot columns share a network trained on FSS-1000's training classes;
--train-config YAML changes how they train, with `samic-vos train`'s keys), or --prompter persam
(training-free). --download fetches and prepares the datasets with official
archives first (DAVIS, VOC2012 + SBD, COCO 2014 val, Kvasir-SEG).

A rerun into the same OUT skips finished runs and resumes an unfinished one. Shards: --shard
I/N, torchrun (one process per GPU) or a Slurm array: each process runs its share of the
runs; the one that finishes the last writes the table, or run --merge afterwards.
"""

EPILOG = """\
examples:
  samic-vos bench paper --root DATASETS --samic samic.pt -o runs/paper
  samic-vos bench paper --root DATASETS --download --train -o runs/paper
  torchrun --nproc_per_node 8 $(which samic-vos) bench paper --root DATASETS \\
      --samic s.pt -o runs/paper
"""


def register(benchmarks: argparse._SubParsersAction) -> None:
    """Add ``paper`` to the ``bench`` subcommands."""
    from samic_vos.inference.names import IMAGE_PROMPTERS

    parser = benchmarks.add_parser(
        "paper",
        help="every column of SAMIC's Table 1 whose data is present, in one table",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--root", type=Path, required=True, metavar="ROOT", help="the folder holding the datasets"
    )
    common.add_out(parser, "output folder (default: runs/bench-paper)")
    parser.add_argument(
        "--prompter",
        choices=IMAGE_PROMPTERS,
        default="samic",
        help="who prompts SAM (default samic)",
    )
    parser.add_argument("--samic", type=Path, metavar="CKPT", help="a trained SAMIC network")
    parser.add_argument("--train", action="store_true", help="train the networks first (see above)")
    parser.add_argument(
        "--train-config",
        type=Path,
        metavar="YAML",
        help="with --train: a `samic-vos train` YAML for every network trained (default: the "
        "paper's settings)",
    )
    parser.add_argument("--sam-model", metavar="NAME", help=common.SAM_MODEL_HELP)
    common.add_sam_checkpoint(parser)
    common.add_backbone_weights(parser)
    parser.add_argument("--device", metavar="DEVICE", help=common.DEVICE_HELP)
    parser.add_argument(
        "--episode-count",
        type=int,
        metavar="N",
        help="only the first N episodes of each few-shot run (quick runs; the paper uses all)",
    )
    parser.add_argument(
        "--download", action="store_true", help="download and prepare the datasets into ROOT"
    )
    common.add_shards(parser, "run")
    parser.add_argument("--force", action="store_true", help="start afresh over another run in OUT")
    common.add_common(parser, config=False)
    parser.set_defaults(func=run)


def execute(argv: list[str]) -> None:
    """Run one ``samic-vos`` command in this process (its tables logged, not printed); a
    mistake it finds propagates as its own one-line :class:`UserError`."""
    from samic_vos.commands.cli import build_parser
    from samic_vos.runtime.errors import UserError

    args = build_parser().parse_args(argv)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = int(args.func(args) or 0)
    if printed.getvalue().strip():
        log.info("%s", printed.getvalue().rstrip())
    if code:
        raise UserError(f"`samic-vos {' '.join(argv[:2])}` ended with status {code}")


def run(args: argparse.Namespace) -> int:
    from samic_vos.pipelines.bench_paper import BenchPaperInputs, run_bench_paper
    from samic_vos.reports.paper_report import paper_markdown

    inputs = BenchPaperInputs(
        root=args.root,
        out_dir=args.out or Path("runs") / "bench-paper",
        prompter=args.prompter,
        samic_checkpoint=args.samic,
        train=args.train,
        train_config=args.train_config,
        sam_model=args.sam_model,
        sam_checkpoint=args.sam_checkpoint,
        backbone_weights=args.backbone_weights,
        device=args.device,
        episode_count=args.episode_count,
        download=args.download,
        shard=args.shard,
        merge=args.merge,
        force=args.force,
    )
    result = run_bench_paper(inputs, execute)
    if result.scores is None:
        log.info(
            "ran %d of the table's runs; %d remain: run the other shards, then `--merge`",
            len(result.runs),
            len(result.remaining),
        )
        return 0
    common.stdout(paper_markdown(result.scores).rstrip("\n"))
    return 0
