"""CI: the CLI as users install it, from the built wheel in a fresh virtualenv (no ``-e``).

Run with that virtualenv's Python, from outside the source tree, so that nothing of the tree
can shadow the installed package: every command's ``--help`` (found from the installed parser,
nested subcommands included), ``--version``, and one tiny job end to end (``eval davis`` on
the real STM results in ``../shared/data``, whose official scores are known).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from samic_vos.commands.cli import build_parser

SOURCE = Path(__file__).resolve().parents[1]


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple]:
    """Every command of ``parser`` as its words (``("bench", "davis")``), the top one first."""
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += command_paths(sub, (*prefix, name))
    return found


def run(cli: str, *args: str) -> str:
    done = subprocess.run([cli, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"CI: `samic-vos {' '.join(args)}` exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def main() -> None:
    import samic_vos

    installed = Path(samic_vos.__file__).resolve()
    if "site-packages" not in installed.parts:
        sys.exit(f"CI: samic_vos is imported from {installed}, not from the installed wheel")
    cli = shutil.which("samic-vos", path=str(Path(sys.executable).parent))
    if cli is None:
        sys.exit("CI: the wheel installed no `samic-vos` command")
    run(cli, "--version")
    paths = command_paths(build_parser())
    for words in paths:
        run(cli, *words, "--help")
    data = SOURCE.parent / "shared" / "data"
    stm = data / "results" / "STM_DAVIS16_val"
    printed = run(
        cli,
        "eval",
        "davis",
        str(stm),
        "--davis-root",
        str(data / "DAVIS"),
        "--year",
        "2016",
        "--json",
        "-q",
    )
    ours = json.loads(printed)["global"]
    official = json.loads(stm.with_suffix(".expected.json").read_text())["global"]
    worst = max(abs(ours[key] - value) for key, value in official.items())
    if worst > 1e-6:
        sys.exit(f"CI: the wheel's eval davis differs from the official scores by {worst:.2e}")
    print(
        f"CI: the wheel works: {len(paths)} commands' --help; eval davis J&F "
        f"{ours['J&F-Mean']:.6f} (official {official['J&F-Mean']:.6f})"
    )


if __name__ == "__main__":
    main()
