"""``samic-vos bench davis``: one command from a DAVIS root to the paper's table."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from samic_vos.commands import bench_fewshot, common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Track every sequence of a DAVIS set from its first annotated frame (every object of that
mask; DAVIS-2016 masks binarised) with the same tracker as `samic-vos track`, score the
results with `samic-vos eval davis`, and print one table beside the published figures, with
frames per second and the seconds spent per stage. Writes OUT/results/<seq>/<frame>.png (the
DAVIS layout), OUT/prompts/<seq>.jsonl, OUT/config.yaml, OUT/scores.json.

SAMIC: --samic CKPT, or --train (train on the root's train set first, kept as OUT/samic.pt),
or neither: the network is adapted on each sequence's first frame, as `track` does.
Training-free prompters: --prompter previous-mask | persam.

A rerun into the same OUT skips finished sequences and continues an unfinished one from its
last complete frame. Shards: --shard I/N, or launched by torchrun (RANK/WORLD_SIZE, one
process per GPU) or as a Slurm array (SLURM_ARRAY_TASK_ID/COUNT); the shard that completes
the set scores it, or run --merge OUT when all are done.
"""

EPILOG = """\
examples:
  samic-vos bench davis --davis-root DAVIS --year 2016 --samic samic.pt -o runs/d16
  samic-vos bench davis --davis-root DAVIS --config configs/davis17.yaml --train -o runs/d17
  torchrun --nproc_per_node 8 $(which samic-vos) bench davis --davis-root DAVIS \\
      --samic s.pt -o runs/d17
  sbatch --array=0-7 --wrap "samic-vos bench davis --davis-root DAVIS --samic s.pt -o runs/d17"
  samic-vos bench davis --davis-root DAVIS --samic s.pt -o runs/d17 --merge
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark runs: DAVIS J&F, few-shot mIoU beside the published figures",
        description="Benchmark runs, resumable and sharded.",
    )
    common.needs_action(parser)
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    davis = benchmarks.add_parser(
        "davis",
        help="track, score and table a DAVIS set",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common.add_davis(davis, root_required=False)
    common.add_out(davis, "output folder (default: runs/bench-davis-<year>-<set>)")
    common.add_prompter(davis, "track.prompter", video=True)
    davis.add_argument(
        "--train", action="store_true", help="train SAMIC on the root's train set first"
    )
    common.add_models(davis, prefix="track.", network_prefixes=("track.", "train."))
    common.add_device(davis, key="track.device")
    common.add_encoder(davis, prefix="track.")
    common.add_shards(davis, "track")
    davis.add_argument("--force", action="store_true", help="start afresh over another run in OUT")
    davis.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    davis.add_argument(
        "--report",
        action="store_true",
        help="also write OUT/report.html: tables, per-sequence plots, overlay strips",
    )
    davis.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        default=(),
        metavar="OUT2",
        help="finished bench runs (other prompters) shown beside this one in the report",
    )
    davis.add_argument(
        "--download",
        action="store_true",
        help="download DAVIS trainval of --year into the cache (`samic-vos data`) and use it",
    )
    common.add_common(davis)
    davis.set_defaults(func=run_davis)
    bench_fewshot.register(benchmarks)
    from samic_vos.commands import bench_paper

    bench_paper.register(benchmarks)


def run_davis(args: argparse.Namespace) -> int:
    from samic_vos.data.davis import require_davis_root
    from samic_vos.runtime.errors import UserError

    # The data exists: checked before torch is imported (a mistake costs no start-up).
    require_davis_root(args.davis_root)
    from samic_vos.pipelines.bench_davis import BenchDavisConfig, BenchInputs, run_bench_davis

    config = common.job_config(BenchDavisConfig(), args)
    common.refuse_ignored_flags(args, config.track.prompter)
    if args.download:
        from samic_vos.hub.datasets import DAVIS_BY_YEAR, ensure_dataset

        if args.davis_root is not None:
            raise UserError("--download picks the DAVIS root itself: drop --davis-root")
        args.davis_root = ensure_dataset(DAVIS_BY_YEAR[config.davis.year])
        log.info("DAVIS root: %s", args.davis_root)
    if args.davis_root is None:
        raise UserError("pass --davis-root ROOT (or --download to fetch DAVIS)")
    out = args.out or Path("runs") / f"bench-davis-{config.davis.year}-{config.davis.split}"
    inputs = BenchInputs(
        davis_root=args.davis_root,
        out_dir=out,
        samic_checkpoint=args.samic,
        train=args.train,
        sam_checkpoint=args.sam_checkpoint,
        backbone_weights=args.backbone_weights,
        shard=args.shard,
        merge=args.merge,
        force=args.force,
        report=args.report or bool(args.compare),
        compare=tuple(args.compare),
    )
    result = run_bench_davis(inputs, config)
    if result.scores is None:
        log.info(
            "tracked %d sequences (%d frames); %d of the set remain: run the other shards, "
            "then `--merge`",
            len(result.sequences),
            result.computed,
            len(result.remaining),
        )
        return 0
    if args.json:
        common.stdout(json.dumps(result.scores, indent=1))
    else:
        common.stdout(format_scores(result.scores))
    return 0


def format_scores(scores: dict[str, Any]) -> str:
    """The benchmark's table: our measures (x 100) beside the published J&F-Mean."""
    from samic_vos.commands.common import format_table
    from samic_vos.eval.davis_eval import GLOBAL_COLUMNS

    track = (scores.get("config") or {}).get("track", {})
    ours = f"ours ({track.get('prompter', '?')}, SAM {track.get('sam_model', '?')})"
    rows = [[ours, *(f"{100 * scores['global'][c]:.1f}" for c in GLOBAL_COLUMNS)]]
    for name, value in scores["published"].items():
        rows.append([name, "–" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")])
        rows[-1] += [""] * (len(GLOBAL_COLUMNS) - 1)
    title = f"DAVIS-{scores['year']} {scores['set']} (J&F x 100; published: J&F-Mean)"
    lines = [title, format_table(["method", *GLOBAL_COLUMNS], rows), ""]
    fps = scores.get("fps")
    seconds = scores.get("seconds") or {}
    frames = scores.get("frames") or 0
    if fps:
        per_stage = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
        lines.append(f"{frames} frames tracked at {fps:.2f} frames/s; {per_stage}")
    return "\n".join(lines)
