"""Output checks, write errors as one line, whole-line JSONL files and atomic writes."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from samic_vos.data.video_writer import VideoWriter
from samic_vos.runtime import atomic
from samic_vos.runtime.atomic import JsonLinesWriter, atomic_write_text
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import (
    check_writable_dir,
    check_writable_file,
    removing_new_folders,
    reporting_write_errors,
)


def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_output_checks_create_nothing(tmp_path):
    check_writable_file(tmp_path / "new" / "deeper" / "out.mp4")  # created later, by the job
    check_writable_dir(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone, no folder was made
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(UserError, match=f"{tmp_path}: is a folder; give a file name"):
        check_writable_file(tmp_path)
    with pytest.raises(UserError, match=f"{a_file}: {a_file} is a file, not a folder"):
        check_writable_dir(a_file)
    with pytest.raises(UserError, match=f"{a_file / 'out'}: {a_file} is a file, not a folder"):
        check_writable_dir(a_file / "out")
    with pytest.raises(UserError, match=f"{a_file / 'sub'}: {a_file} is a file, not a folder"):
        check_writable_file(a_file / "sub" / "o.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_write_errors_name_the_file_and_the_fix(tmp_path):
    path = tmp_path / "masks" / "00003.png"
    with pytest.raises(UserError) as info, reporting_write_errors(path):
        raise enospc()
    assert str(info.value) == (
        f"{path}: cannot write it, the disk is full (No space left on device); free some space "
        "or choose an output on another disk"
    )
    with pytest.raises(UserError, match=r"not writable \(Read-only file system\); choose another"):
        with reporting_write_errors(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    with pytest.raises(FileNotFoundError), reporting_write_errors(path):  # not the user's
        raise FileNotFoundError(errno.ENOENT, "gone")


def test_atomic_write_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    def fail(self, data):
        with self.open("wb") as fh:  # a few bytes fit, then the disk is full
            fh.write(data[:3])
        raise enospc()

    monkeypatch.setattr(type(tmp_path), "write_bytes", fail)
    with pytest.raises(UserError, match=f"{tmp_path / 'config.yaml'}: cannot write it, the disk"):
        atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


class FullDiskFile:
    """A raw file on a disk with ``room`` bytes left: a short write, then ENOSPC."""

    def __init__(self, raw, room: int) -> None:
        self.raw, self.room = raw, room

    def write(self, data: bytes) -> int:
        if self.room <= 0:
            raise enospc()
        written = self.raw.write(data[: self.room])
        self.room -= written
        return written

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


def test_jsonl_keeps_whole_lines_on_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "prompts.jsonl"
    records = [{"frame": f"{i:05d}", "objects": {"1": {"points": [[i, 2 * i]]}}} for i in range(5)]
    line = len(json.dumps(records[0]) + "\n")
    room = 2 * line + line // 2  # two lines and a half
    monkeypatch.setattr(atomic, "open", lambda *a, **k: FullDiskFile(open(*a, **k), room), False)
    with JsonLinesWriter(path) as writer:
        writer.write(records[0])
        writer.write(records[1])
        with pytest.raises(UserError, match=f"{path}: cannot write it, the disk is full"):
            writer.write(records[2])
    assert path.read_text() == "".join(json.dumps(r) + "\n" for r in records[:2])


def test_jsonl_append_continues_after_the_last_whole_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"frame": "00000"}\n{"frame": "00001"}\n{"frame": "000')  # a killed run
    with JsonLinesWriter(path, append=True) as writer:
        writer.write({"frame": "00002"})
    assert [json.loads(x)["frame"] for x in path.read_text().splitlines()] == [
        "00000",
        "00001",
        "00002",
    ]
    with JsonLinesWriter(path) as writer:  # not appending: starts empty
        writer.write({"frame": "00009"})
    assert path.read_text() == '{"frame": "00009"}\n'


def test_removing_new_folders_only_on_failure_and_only_empty_ones(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    with pytest.raises(RuntimeError), removing_new_folders(target):
        target.mkdir(parents=True)
        raise RuntimeError("failed before any output")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), removing_new_folders(target):
        target.mkdir(parents=True)
        (tmp_path / "a" / "kept.txt").write_text("output")
        raise RuntimeError("failed after some output")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/kept.txt"]
    with removing_new_folders(target):
        target.mkdir(parents=True)
    assert target.is_dir()


class FullDiskContainer:
    """PyAV's output container on a full disk: muxing raises PyAV's OSError (errno 28)."""

    def __init__(self, container) -> None:
        self.container = container

    def mux(self, packet) -> None:
        raise enospc()

    def close(self) -> None:
        self.container.close()


def test_overlay_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "overlay.mp4"
    frame = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(UserError, match=f"{out}: cannot write it, the disk is full"):
        with VideoWriter(out, 24, (32, 32)) as writer:
            writer._container = FullDiskContainer(writer._container)
            for _ in range(20):  # the encoder hands out its first packets after a few frames
                writer.write(frame)
    assert list(tmp_path.iterdir()) == []  # no overlay and no temporary file


def test_remove_leftovers_takes_what_a_killed_atomic_write_left_and_nothing_else(tmp_path):
    """A process killed inside atomic_path leaves its temporary file; remove_leftovers finds
    exactly those (any extension), not the files themselves nor look-alikes."""
    keep = ["a.png", ".hidden", "a.part.png", ".a.short.part.png", "notes.part"]
    for name in keep:
        (tmp_path / name).write_bytes(b"mine")
    left = []
    for target in ("a.png", "a.sambox.json", "lock", "frame.00012.png"):
        with pytest.raises(KeyboardInterrupt), atomic.atomic_path(tmp_path / target) as tmp:
            tmp.write_bytes(b"half")
            left.append(tmp)
            raise KeyboardInterrupt  # atomic_path cleans up: put the file back, as a kill would
        left[-1].write_bytes(b"half")
    assert sorted(atomic.remove_leftovers(tmp_path)) == sorted(left)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert atomic.remove_leftovers(tmp_path / "missing") == []
    # of=NAME: only the temporary files of that one file
    own = [tmp_path / ".o.abcdefgh.part.mp4", tmp_path / ".o.ABCD_123.part.mp4"]
    others = [tmp_path / ".o.abcdefgh.part.png", tmp_path / ".other.abcdefgh.part.mp4"]
    for path in own + others:
        path.write_bytes(b"half")
    assert sorted(atomic.remove_leftovers(tmp_path, of="o.mp4")) == sorted(own)
    assert all(path.exists() for path in others) and atomic.is_leftover(others[1].name)


def test_atomic_folder_replaces_a_folder_whole_or_not_at_all(tmp_path):
    from samic_vos.runtime.atomic import atomic_folder

    target = tmp_path / "exports" / "coco"
    target.parent.mkdir()
    with atomic_folder(target) as tmp:
        (tmp / "a.json").write_text("1")
        assert not target.exists()  # nothing shows until the block succeeds
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]
    with atomic_folder(target) as tmp:
        (tmp / "b.json").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.json"]  # a.json went with the old
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "c.json").write_text("3")
        raise RuntimeError("the export failed")
    assert sorted(p.name for p in target.iterdir()) == ["b.json"]  # untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["coco"]  # nothing left over
