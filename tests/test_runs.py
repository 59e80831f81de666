"""Output folders of runs: another run that produced nothing yet never blocks a new one."""

from __future__ import annotations

import pytest

from samic_vos.runtime.errors import UserError
from samic_vos.runtime.runs import RunManifest, open_run, write_manifest

OUTPUTS = ("masks", "prompts.jsonl", "config.yaml", "train")


def _started(folder, config: dict) -> None:
    """A run that stopped before any result: its manifest, config and empty places."""
    (folder / "masks").mkdir(parents=True)
    (folder / "train").mkdir()
    write_manifest(folder / "train", RunManifest("train", {}, {}))
    (folder / "train" / "config.yaml").write_text("a: 1\n")
    (folder / "config.yaml").write_text("a: 1\n")
    (folder / "prompts.jsonl").write_text("")
    write_manifest(folder, RunManifest("track", {"video": "v"}, config))


def test_another_run_without_results_is_replaced(tmp_path):
    _started(tmp_path, {"a": 1})
    assert (
        open_run(
            tmp_path, RunManifest("track", {"video": "v"}, {"a": 2}), force=False, outputs=OUTPUTS
        )
        == "new"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_same_run_without_results_resumes(tmp_path):
    _started(tmp_path, {"a": 1})
    manifest = RunManifest("track", {"video": "v"}, {"a": 1})
    assert open_run(tmp_path, manifest, force=False, outputs=OUTPUTS) == "resume"
    assert (tmp_path / "run.json").is_file()


@pytest.mark.parametrize("result", ["masks/00000.png", "prompts.jsonl", "train/latest.pt"])
def test_another_run_with_a_result_is_refused(tmp_path, result):
    _started(tmp_path, {"a": 1})
    (tmp_path / result).write_bytes(b"x")
    with pytest.raises(UserError, match="holds another run .* pass `force`"):
        open_run(
            tmp_path, RunManifest("track", {"video": "v"}, {"a": 2}), force=False, outputs=OUTPUTS
        )
    assert (tmp_path / result).read_bytes() == b"x" and (tmp_path / "run.json").is_file()
