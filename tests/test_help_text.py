"""`--help` says what the commands do now: the folders `data download` unpacks into, the
weights `weights` lists and downloads, what `train` trains on."""

from __future__ import annotations

import re

import pytest

from samic_vos.commands.cli import main


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse's line breaks undone


def test_data_download_help_names_each_datasets_folder(capsys):
    from samic_vos.hub.datasets import ARCHIVES

    text = _help(["data", "download"], capsys)
    assert "into ROOT/NAME" not in text  # only DAVIS lands in ROOT/NAME
    for entry in ARCHIVES.values():
        top = (entry.folder or "ROOT/NAME").split("/")[0]
        assert re.search(rf"\b{re.escape(top)}\b", text), (entry.name, top)
    assert "DAVIS: every sequence of its ImageSets lists" in text


def test_weights_help_names_every_family_and_what_is_not_downloaded(capsys):
    from samic_vos.hub.weights import REGISTRY

    text = _help(["weights"], capsys)
    for family in ("SAM 2.1", "HQ-SAM", "MedSAM", "ResNet-50"):
        assert family in text
    unverifiable = [e.name for e in REGISTRY.values() if e.sha256 is None]
    assert unverifiable and "publish no SHA-256" in text and "not downloaded" in text


def test_top_level_help_says_train_takes_few_shot_sets(capsys):
    text = _help([], capsys)
    assert re.search(r"train the SAMIC network on DAVIS, SAMBOX annotations or few-shot", text)


def test_davis_set_help_names_the_default_each_job_uses(capsys):
    from samic_vos.data.davis import DavisSelection
    from samic_vos.training.job import TrainJobConfig

    defaults = {
        ("eval", "davis"): DavisSelection().split,
        ("bench", "davis"): DavisSelection().split,
        ("train",): TrainJobConfig().davis.split,
    }
    assert set(defaults.values()) == {"val", "train"}
    for command, split in defaults.items():
        assert f"--set SET ImageSets list to use (default {split})" in _help(list(command), capsys)


@pytest.mark.parametrize("command", [[], ["bench"], ["data"], ["eval"], ["weights"]])
def test_a_command_without_its_action_shows_its_help_on_stderr(command, capsys):
    assert main(command) == 2
    out, err = capsys.readouterr()
    assert out == ""  # stdout carries results only
    assert err.startswith(f"usage: samic-vos {' '.join(command)}".rstrip())
