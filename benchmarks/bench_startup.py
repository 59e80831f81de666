"""Benchmark how long ``samic-vos`` takes to start: ``--help`` (the installed console script and
``python -m samic_vos``), ``--version`` and every subcommand's ``--help``, against
``python -c pass`` (the interpreter alone), each run ``--repeats`` times in fresh processes,
interleaved so that a change of load hits all of them alike; the median wall time is kept.
``--before DIR`` adds ``python -m samic_vos --help`` and ``--version`` of another copy of the
package (e.g. ``git archive OLD samic_vos | tar -x -C DIR``), run with ``PYTHONPATH=DIR``.

    python benchmarks/bench_startup.py --repeats 21 --before /tmp/samic_vos_before
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from samic_vos.commands.cli import build_parser, command_paths

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=21, help="runs of each command")
    parser.add_argument("--before", type=Path, help="folder holding another samic_vos/")
    args = parser.parse_args()

    script = shutil.which("samic-vos", path=str(Path(sys.executable).parent)) or "samic-vos"
    python = [sys.executable]
    cases: dict[str, list[str]] = {
        "python -c pass": [*python, "-c", "pass"],
        "samic-vos --help": [script, "--help"],
        "python -m samic_vos --help": [*python, "-m", "samic_vos", "--help"],
        "samic-vos --version": [script, "--version"],
    }
    envs: dict[str, dict[str, str]] = {}
    if args.before is not None:
        for flag in ("--help", "--version"):
            name = f"before: python -m samic_vos {flag}"
            cases[name] = [*python, "-m", "samic_vos", flag]
            envs[name] = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
    for path in command_paths(build_parser()):
        cases[f"samic-vos {' '.join(path)} --help"] = [script, *path, "--help"]

    times: dict[str, list[float]] = {name: [] for name in cases}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, command in cases.items():
            start = time.perf_counter()
            # `python -m` looks in the working folder first: the before copy runs from its own.
            where = args.before if name in envs else REPO
            done = subprocess.run(command, capture_output=True, cwd=where, env=envs.get(name))
            times[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                sys.exit(f"{name} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    load_after = os.getloadavg()[0]

    base = statistics.median(times["python -c pass"])
    print(
        f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); load average {load_before:.2f} before, "
        f"{load_after:.2f} after; median of {args.repeats} runs each"
    )
    print("| command | median ms | over `python -c pass` ms | ratio |")
    print("| --- | --- | --- | --- |")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(
            f"| `{name}` | {1000 * median:.0f} | {1000 * (median - base):.0f} | "
            f"{median / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
