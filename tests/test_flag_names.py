"""The CLI names arguments by their flags on every line it prints, log lines included: library
messages put argument names in backticks (`force`), which the Python API shows as they are."""

from __future__ import annotations

import logging

from samic_vos.commands.cli import main
from samic_vos.runtime import console


def test_log_lines_show_flags(capsys):
    from samic_vos.commands.cli import flag_names

    console.configure(0, translate=flag_names)
    log = logging.getLogger("samic_vos.test")
    log.info("out: this run is finished (3 frames); pass `force` to redo it")
    log.info("`sam_checkpoint` my.pth: not the official sam_vit_b_01ec64.pth; used as is")
    log.warning("raise `train_fraction`; `unknown` stays")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "samic-vos: out: this run is finished (3 frames); pass --force to redo it",
        "samic-vos: --sam-checkpoint my.pth: not the official sam_vit_b_01ec64.pth; used as is",
        "samic-vos: warning: raise --train-fraction; `unknown` stays",
    ]


def test_bench_davis_names_train_as_its_flag(tmp_path, capsys, davis_root):
    samic = tmp_path / "samic.pt"
    samic.write_bytes(b"")
    out = tmp_path / "out"
    args = ["--davis-root", str(davis_root), "--year", "2016", "--set", "val"]
    code = main(["bench", "davis", *args, "--samic", str(samic), "--train", "-o", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err == ["samic-vos: error: --samic and --train exclude each other: use one network"]
    assert not out.exists()
