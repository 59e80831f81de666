"""Start-up: the parser, every `--help`, `--version`, a whole `eval davis` run and each
command's cheapest user mistake import none of torch, torchvision, OpenCV or segment-anything;
the parser, `--help` and `--version` import neither NumPy nor Pillow; `eval davis` on indexed
PNG masks does not import Pillow, and without a progress bar it does not import tqdm.

Each case runs in a fresh interpreter (this test process has imported them long ago) and reports
``sys.modules`` after the command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from samic_vos.commands.cli import build_parser, command_paths

HEAVY = ("torch", "torchvision", "cv2", "segment_anything")
# What a command that reads arrays needs, but not the parser (its choices are names modules).
ARRAYS = ("numpy", "PIL")

# Runs main(argv) for each argv of sys.argv[1] (JSON), then prints the exit statuses and the heavy
# and array modules loaded (stdout, JSON); the commands' own output goes to stderr / is discarded.
RUNNER = f"""
import contextlib, io, json, sys
from samic_vos.commands.cli import build_parser, main
argvs = json.loads(sys.argv[1])
codes = []
if argvs is None:
    build_parser()
for argv in argvs or []:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            codes.append(main(argv))
        except SystemExit as done:
            codes.append(done.code)
    last_out = out.getvalue()
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
arrays = sorted(m for m in {ARRAYS!r} if m in sys.modules)
last_out = last_out if argvs else ""
done = {{"codes": codes, "heavy": heavy, "arrays": arrays, "out": last_out}}
print(json.dumps({{**done, "bars": "tqdm" in sys.modules}}))
"""


def run_fresh(argvs: list[list[str]] | None) -> tuple[dict, str]:
    """``RUNNER`` in a new interpreter: ``({"codes", "heavy", "arrays", "out", "bars"},
    stderr)`` (``bars``: tqdm was imported);
    ``None``: only build the parser."""
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


def test_the_parser_imports_none_of_the_heavy_libraries():
    result, _ = run_fresh(None)
    assert result["heavy"] == []
    assert result["arrays"] == []


def test_every_help_and_the_version_import_none_of_them():
    paths = command_paths(build_parser())
    # The commands of the house, and their actions, are all found by the walk.
    assert {"track", "segment", "train", "eval", "bench", "weights", "data", "annotate"} <= {
        p[0] for p in paths
    }
    assert ["bench", "davis"] in paths and ["bench", "fewshot"] in paths
    argvs = [["--help"], ["--version"], *([*p, "--help"] for p in paths)]
    result, _ = run_fresh(argvs)
    assert result["codes"] == [0] * len(argvs)
    assert result["heavy"] == []
    assert result["arrays"] == []


def test_a_whole_eval_davis_run_imports_none_of_them(shared_data: Path, davis_root: Path):
    results = shared_data / "results" / "STM_DAVIS16_val"
    argv = ["eval", "davis", str(results), "--davis-root", str(davis_root), "--year", "2016"]
    result, _ = run_fresh([[*argv, "--json"]])
    assert result["codes"] == [0]
    expected = json.loads((shared_data / "results" / "STM_DAVIS16_val.expected.json").read_text())
    scores = json.loads(result["out"])["global"]
    assert scores == pytest.approx(expected["global"], abs=1e-6)
    assert result["heavy"] == []
    # Its masks are 8-bit indexed PNGs, inflated without Pillow (~20 ms of start-up).
    assert result["arrays"] == ["numpy"]
    assert not result["bars"]  # stderr is no terminal: no bar, and no tqdm import (~30 ms)


def test_missing_inputs_are_one_line_and_exit_2_before_torch(tmp_path: Path, shared_data: Path):
    missing = tmp_path / "missing"
    out = tmp_path / "out"
    mask = shared_data / "videos" / "davis_bear_first_mask.png"
    cases = [
        (["track", str(missing), "--first-mask", str(mask), "-o", str(out)], "video or frame"),
        (["track", str(missing / "v.mp4"), "--first-mask", str(missing), "-o", str(out)], "video"),
        (
            ["segment", "x.jpg", "--ref", str(missing), "--ref-mask", str(mask), "-o", str(out)],
            "reference image (--ref)",
        ),
        (
            ["segment", str(missing), "--ref", str(mask), "--ref-mask", str(mask), "-o", str(out)],
            "target not found",
        ),
        (["train", "--davis-root", str(missing), "-o", str(out)], "DAVIS root not found"),
        (["train", "--sambox", str(missing), "-o", str(out)], "annotation folder not found"),
        (
            ["train", "--fewshot", "fss1000", "--root", str(missing), "-o", str(out)],
            "folder not found",
        ),
        (["bench", "davis", "--davis-root", str(missing), "-o", str(out)], "DAVIS root not found"),
        (["bench", "fewshot", "--root", str(missing), "-o", str(out)], "folder not found"),
        (["render", str(missing), str(missing), "-o", str(out / "o.mp4")], "video or frame"),
        (
            [
                "eval",
                "davis",
                str(missing),
                "--davis-root",
                str(shared_data / "DAVIS"),
                "--year",
                "2016",
            ],
            "results folder not found",
        ),
    ]
    for argv, problem in cases:
        result, err = run_fresh([argv])
        lines = err.strip().splitlines()
        assert result["codes"] == [2], (argv, err)
        assert len(lines) == 1 and str(missing) in lines[0] and problem in lines[0], (argv, err)
        assert result["heavy"] == [], (argv, result["heavy"])
        assert not out.exists(), argv  # nothing written, no empty folder left
