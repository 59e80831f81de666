"""Output folders of runs: another run that produced nothing yet never blocks a new one (unless
shards write the folder: they claim it, and never replace nor `force` another run)."""

from __future__ import annotations

import errno
import multiprocessing
import sys

import pytest

from samic_vos.runtime import atomic
from samic_vos.runtime.atomic import atomic_create_text
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


# Shards: several processes open one folder at once, and none can tell another run from a
# shard starting beside it.


def test_the_first_shard_claims_a_new_folder_and_one_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "out"
    first = RunManifest("segment", {"targets": "t"}, {"a": 1})
    assert open_run(out, first, force=False, outputs=OUTPUTS, shards=2) == "new"
    claimed = (out / "run.json").read_bytes()
    assert b'"a": 1' in claimed
    other = RunManifest("segment", {"targets": "t"}, {"a": 2})
    with pytest.raises(UserError, match=r"holds another run \(it differs in config.a\).*remove"):
        open_run(out, other, force=False, outputs=OUTPUTS, shards=2)
    same = RunManifest("segment", {"targets": "t"}, {"a": 1})
    assert open_run(out, same, force=False, outputs=OUTPUTS, shards=2) == "resume"
    assert (out / "run.json").read_bytes() == claimed
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]


def test_a_shard_never_replaces_a_run_without_results(tmp_path):
    """A shard that only wrote its manifest yet (loading its models) is not removed by a
    shard with other settings: that one is refused, the first one's files stay."""
    _started(tmp_path, {"a": 1})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="holds another run"):
        open_run(
            tmp_path,
            RunManifest("track", {"video": "v"}, {"a": 2}),
            force=False,
            outputs=OUTPUTS,
            shards=3,
        )
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert (tmp_path / "masks").is_dir()


def test_shards_refuse_force(tmp_path):
    """`force` in every shard would let each remove what the others wrote."""
    _started(tmp_path, {"a": 1})
    (tmp_path / "masks" / "00000.png").write_bytes(b"x")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for config in ({"a": 1}, {"a": 2}):
        manifest = RunManifest("track", {"video": "v"}, config)
        with pytest.raises(UserError, match="`force` with shards"):
            open_run(tmp_path, manifest, force=True, outputs=OUTPUTS, shards=2)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_atomic_create_text_writes_once(tmp_path):
    path = tmp_path / "run.json"
    assert atomic_create_text(path, "first\n")
    assert not atomic_create_text(path, "second\n")
    assert path.read_text() == "first\n" and sorted(tmp_path.iterdir()) == [path]


def _without_hard_links(monkeypatch):
    """os.link as on FAT or a FUSE mount without hard links."""

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", refuse)


def _create(path, text, start, results):
    start.wait()
    results.put(atomic_create_text(path, text))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_atomic_create_text_without_hard_links_is_still_written_once(tmp_path, monkeypatch):
    _without_hard_links(monkeypatch)
    path = tmp_path / "run.json"
    context = multiprocessing.get_context("fork")  # the children keep the patched os.link
    start, results = context.Barrier(4), context.Queue()
    texts = [f"shard {i}\n" for i in range(4)]
    children = [context.Process(target=_create, args=(path, t, start, results)) for t in texts]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert sorted(results.get(timeout=5) for _ in children) == [False, False, False, True]
    assert path.read_text() in texts and sorted(tmp_path.iterdir()) == [path]
    assert not atomic_create_text(path, "again\n") and path.read_text() in texts


def test_a_filesystem_without_either_claim_is_one_line(tmp_path, monkeypatch):
    _without_hard_links(monkeypatch)
    monkeypatch.setattr(atomic, "_RENAME_NOREPLACE", 1 << 30)  # a flag no kernel knows: EINVAL
    path = tmp_path / "run.json"
    with pytest.raises(UserError, match="neither hard links nor exclusive renames") as caught:
        atomic_create_text(path, "first\n")
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left
