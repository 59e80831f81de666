"""Benchmark ``samic-vos eval davis`` against the official davis2017-evaluation toolkit.

Two workloads on ``../shared/data`` (never copied into the repository; everything built here
lives in a temporary folder):

- ``stm-4``: the published STM masks of the 4 DAVIS-2016 val sequences;
- ``shifted-20``: all 20 sequences (train + val), the result of frame t being the ground
  truth of frame t-1 (symbolic links), i.e. a plausible tracker that lags one frame.

Each is scored by ``samic_vos.eval.davis_eval.evaluate_davis`` and, with ``--official PATH``
(a checkout of https://github.com/davisvideochallenge/davis2017-evaluation; run it with a
Python that has its dependencies, ``--official-python``), by the toolkit's
``DAVISEvaluation``, each in a fresh process. Three times are taken: the evaluation itself
(reading the masks included, interpreter start-up and imports excluded), the whole process
(``samic-vos eval davis ... --json`` for ours: ``python -m samic_vos`` of this interpreter, or
the ``samic-vos`` given by ``--cli``, e.g. one installed from the built wheel, as users run it),
and the CPU time of the evaluation process and its workers (less sensitive to other jobs on the
machine than wall time). Every global and per-object number of the two is compared.

    python benchmarks/bench_davis_eval.py --official /tmp/davis2017-evaluation \\
        --official-python /tmp/davis_official_venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs the official toolkit's semi-supervised evaluation, then prints our JSON layout.
OFFICIAL_RUNNER = """
import json, sys, time
import numpy as np
import pandas  # imported by the toolkit's evaluation_method.py: part of its start-up
sys.path.insert(0, sys.argv[1])
from davis2017.evaluation import DAVISEvaluation
start = time.perf_counter()
res = DAVISEvaluation(davis_root=sys.argv[2], task="semi-supervised", gt_set="val").evaluate(
    sys.argv[3])
J, F = res["J"], res["F"]
g = [np.mean(J["M"]), np.mean(J["R"]), np.mean(J["D"]), np.mean(F["M"]), np.mean(F["R"]),
     np.mean(F["D"])]
names = ["J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
out = {"global": dict(zip(names, map(float, g))), "per_object": {
    k: {"J": float(J["M_per_object"][k]), "F": float(F["M_per_object"][k])}
    for k in J["M_per_object"]}}
out["global"]["J&F-Mean"] = (out["global"]["J-Mean"] + out["global"]["F-Mean"]) / 2
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""

# The same for ours, through the Python API as `eval davis` calls it (the CLI run is timed
# separately).
OURS_RUNNER = """
import json, sys, time
from samic_vos.data.davis import DavisDataset
from samic_vos.eval.davis_eval import evaluate_davis
from samic_vos.runtime.heap import keep_freed_memory
start = time.perf_counter()
keep_freed_memory()
workers = int(sys.argv[3]) if len(sys.argv) > 3 else None
evaluation = evaluate_davis(sys.argv[2], DavisDataset(sys.argv[1], "2017", "val"), workers=workers)
out = evaluation.to_json()
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""


def _davis_root(tmp: Path, name: str, data: Path, sequences: list[str]) -> Path:
    """A DAVIS root listing ``sequences`` as ImageSets/2017/val.txt (what the toolkit reads)."""
    root = tmp / name
    (root / "ImageSets" / "2017").mkdir(parents=True)
    for kind in ("JPEGImages", "Annotations"):
        (root / kind).symlink_to(data / "DAVIS" / kind)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(sequences) + "\n")
    return root


def _stm_results(tmp: Path, data: Path, sequences: list[str]) -> Path:
    results = tmp / "stm_results"  # the toolkit writes nothing here, but keep shared/ clean
    results.mkdir()
    for sequence in sequences:
        (results / sequence).symlink_to(data / "results" / "STM_DAVIS16_val" / sequence)
    return results


def _shifted_results(tmp: Path, data: Path, sequences: list[str]) -> Path:
    results = tmp / "shifted_results"
    for sequence in sequences:
        gt = sorted((data / "DAVIS" / "Annotations" / "480p" / sequence).glob("*.png"))
        (results / sequence).mkdir(parents=True)
        for t, path in enumerate(gt):
            (results / sequence / path.name).symlink_to(gt[max(t - 1, 0)])
    return results


def _best_of(command: list[str], repeats: int) -> tuple[list[float], dict]:
    """Best ``[evaluation, process, CPU]`` seconds of ``command`` and the JSON it printed.

    Evaluation: the ``seconds`` the command reports; process: wall time of the whole
    process; CPU: user + system time of the process and its children (worker processes).
    """
    best, output = [float("inf")] * 3, {}
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        output = json.loads(done.stdout)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        times = [output.pop("seconds", float("nan")), wall, cpu]
        best = [min(b, t) for b, t in zip(best, times, strict=True)]
    return best, output


def _max_difference(ours: dict, theirs: dict) -> float:
    if ours["per_object"].keys() != theirs["per_object"].keys():
        return float("inf")
    diffs = [abs(ours["global"][k] - theirs["global"][k]) for k in theirs["global"]]
    for name, scores in theirs["per_object"].items():
        diffs += [abs(ours["per_object"][name][m] - scores[m]) for m in ("J", "F")]
    return max(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--official", type=Path, help="checkout of davis2017-evaluation")
    parser.add_argument("--official-python", default=sys.executable)
    parser.add_argument(
        "--cli",
        help="the samic-vos command to time as the whole process, e.g. a wheel install's "
        "bin/samic-vos (default: this interpreter's -m samic_vos)",
    )
    parser.add_argument("--workers", type=int, help="our --workers (default: one per CPU)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; best is kept")
    args = parser.parse_args()

    sets = args.data / "DAVIS" / "ImageSets" / "2016"
    val = (sets / "val.txt").read_text().split()
    everything = (sets / "train.txt").read_text().split() + val
    workers = [str(args.workers)] if args.workers else []
    with tempfile.TemporaryDirectory(prefix="bench_davis_eval_") as tmp_name:
        tmp = Path(tmp_name)
        workloads = [
            (
                "stm-4",
                _davis_root(tmp, "root_stm", args.data, val),
                _stm_results(tmp, args.data, val),
            ),
            (
                "shifted-20",
                _davis_root(tmp, "root_all", args.data, everything),
                _shifted_results(tmp, args.data, everything),
            ),
        ]
        (tmp / "ours_runner.py").write_text(OURS_RUNNER)
        (tmp / "official_runner.py").write_text(OFFICIAL_RUNNER)
        print(
            f"load average before: {os.getloadavg()[0]:.2f}; CPUs: {os.cpu_count()}; "
            f"best of {args.repeats}; seconds as evaluation / whole process / CPU"
        )
        print("| workload | scored frames | official | ours | speed-up | max abs diff |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, root, results in workloads:
            frames = sum(len(list(p.iterdir())) - 2 for p in results.iterdir())
            runner = [sys.executable, str(tmp / "ours_runner.py"), str(root), str(results)]
            (ours_s, _, ours_cpu), ours = _best_of(runner + workers, args.repeats)
            cli = [
                *([args.cli] if args.cli else [sys.executable, "-m", "samic_vos"]),
                "eval",
                "davis",
                str(results),
                "--davis-root",
                str(root),
                "--json",
            ]
            (_, cli_s, _), cli_out = _best_of(
                cli + (["--workers", *workers] if workers else []), args.repeats
            )
            diff = _max_difference(cli_out, ours)
            mine = f"{ours_s:.2f} / {cli_s:.2f} / {ours_cpu:.2f}"
            if not args.official:
                print(f"| {name} | {frames} | - | {mine} | - | - |")
                continue
            official = [
                args.official_python,
                str(tmp / "official_runner.py"),
                str(args.official),
                str(root),
                str(results),
            ]
            (theirs_s, theirs_process, theirs_cpu), theirs = _best_of(official, args.repeats)
            ratios = (theirs_s / ours_s, theirs_process / cli_s, theirs_cpu / ours_cpu)
            print(
                f"| {name} | {frames} | {theirs_s:.2f} / {theirs_process:.2f} / "
                f"{theirs_cpu:.2f} | {mine} | {' / '.join(f'{r:.1f}x' for r in ratios)} | "
                f"{max(diff, _max_difference(ours, theirs)):.1e} |"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
