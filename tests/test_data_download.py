"""Dataset downloads against a local HTTP server on 127.0.0.1 serving a small DAVIS zip."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from davis_roots import make_davis_root
from http_server import ServerState, isolate, local_server

from samic_vos.commands.cli import main
from samic_vos.hub import datasets as dataset_download
from samic_vos.hub.datasets import (
    ARCHIVES,
    DAVIS_BY_YEAR,
    DatasetArchive,
    dataset_dir,
    default_root,
    downloads_dir,
    ensure_dataset,
)
from samic_vos.runtime.errors import UserError

FILENAME = "tiny-davis.zip"
NAME = "tiny-davis"
SEQUENCES = {"train": ["cows", "dogs"], "val": ["bear"]}


def _masks(frames: int, value: int) -> list[np.ndarray]:
    masks = []
    for t in range(frames):
        ids = np.zeros((6, 8), np.uint8)
        ids[1:4, t : t + 3] = value
        masks.append(ids)
    return masks


def _tree(folder: Path, year: str) -> Path:
    """A DAVIS root at ``folder``: 2 train + 1 val sequences of 3 frames, 8x6 px.

    Year 2017 lists names (``ImageSets/2017``); year 2016 lists frame/mask paths in
    ``ImageSets/480p`` as DAVIS-data.zip does.
    """
    for split, names in SEQUENCES.items():
        make_davis_root(folder, {n: _masks(3, 1) for n in names}, year="2017", split=split)
    if year == "2016":
        old = folder / "ImageSets" / "2017"
        new = folder / "ImageSets" / "480p"
        new.mkdir()
        for split, names in SEQUENCES.items():
            lines = [
                f"/JPEGImages/480p/{n}/{t:05d}.jpg /Annotations/480p/{n}/{t:05d}.png\n"
                for n in names
                for t in range(3)
            ]
            (new / f"{split}.txt").write_text("".join(lines))
        shutil.rmtree(old)
    return folder


def _zip(folder: Path, top: str = "DAVIS") -> bytes:
    """``folder``'s files in a zip under ``top/``, sorted, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path / "home")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The tree the archive holds (year 2017 layout)."""
    return _tree(tmp_path / "source", "2017")


@pytest.fixture
def server(source: Path) -> Iterator[tuple[ServerState, str]]:
    state = ServerState(_zip(source), "/" + FILENAME)
    with local_server(state) as base:
        yield state, base


def _register(
    monkeypatch: pytest.MonkeyPatch, base: str, data: bytes, year: str = "2017", **changes: object
) -> DatasetArchive:
    entry = DatasetArchive(
        NAME,
        FILENAME,
        f"{base}/{FILENAME}",
        hashlib.sha256(data).hexdigest(),
        len(data),
        year,
        ("train", "val"),
        "DAVIS",
        "test dataset",
    )
    entry = DatasetArchive(**{**vars(entry), **changes})
    monkeypatch.setattr(dataset_download, "ARCHIVES", {NAME: entry})
    return entry


def _left_in(folder: Path) -> list[str]:
    """Names in ``folder`` other than the lock files."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


@pytest.mark.parametrize("year", ["2017", "2016"])
def test_download_unpack_check_and_print_the_root(
    year: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tree = _tree(tmp_path / f"source{year}", year)
    state = ServerState(_zip(tree), "/" + FILENAME)
    with local_server(state) as base:
        _register(monkeypatch, base, state.payload, year=year)
        assert main(["data", "download", NAME]) == 0
        target = default_root() / NAME
        assert capsys.readouterr().out == f"{target}\n"
        assert _files(target) == _files(tree)  # every file, byte for byte
        assert state.ranges() == [None]
        assert _left_in(default_root()) == [NAME]  # no unpacking leftovers
        assert _left_in(downloads_dir()) == []  # the archive is deleted once unpacked

        # A complete folder is only checked: no request, same path.
        assert ensure_dataset(NAME) == target
        assert len(state.requests) == 1
        assert main(["data", "list"]) == 0
        assert capsys.readouterr().out == f"{NAME}  {target}\n    test dataset\n"
        # A --root that is no folder (a file, a typo) is a mistake, not "nothing installed".
        (tmp_path / "a file").write_text("")
        for wrong in (target / "missing", tmp_path / "a file"):
            assert main(["data", "list", "--root", str(wrong)]) == 2
            out, err = capsys.readouterr()
            assert out == "" and err == (
                f"samic-vos: error: {wrong}: folder not found; pass the --root the archives "
                "went to\n"
            )


def test_root_and_keep_archive(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state, base = server
    _register(monkeypatch, base, state.payload)
    root = tmp_path / "my datasets"
    path = ensure_dataset(NAME, root, keep_archive=True)
    assert path == root / NAME and (path / "JPEGImages" / "480p" / "bear" / "00002.jpg").is_file()
    assert (downloads_dir() / FILENAME).read_bytes() == state.payload
    assert not default_root().exists()


def test_cut_connection_resumes_with_a_range_request(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, base = server
    _register(monkeypatch, base, state.payload)
    half = len(state.payload) // 2
    state.cut_at = half
    with pytest.raises(UserError, match="could not be downloaded.*run again to resume") as err:
        ensure_dataset(NAME)
    assert f"connection closed after {half} of {len(state.payload)} bytes" in str(err.value)
    assert (downloads_dir() / (FILENAME + ".part")).stat().st_size == half
    assert _left_in(default_root()) == []  # no tree, no half tree
    state.cut_at = None
    target = ensure_dataset(NAME)
    assert state.ranges() == [None, f"bytes={half}-"]
    assert (target / "ImageSets" / "2017" / "val.txt").read_text() == "bear\n"
    assert _left_in(downloads_dir()) == []


def _flip_member_byte(data: bytes) -> bytes:
    """``data`` with one byte of the first member's compressed data changed (its CRC fails)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[0]
    name_len, extra_len = (int.from_bytes(data[o : o + 2], "little") for o in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len
    changed = bytearray(data)
    changed[start + info.compress_size // 2] ^= 0xFF
    return bytes(changed)


@pytest.mark.parametrize(
    ("corruption", "message"),
    [
        ("hash", r"is corrupt \(SHA-256 [0-9a-f]{12}…, expected abababababab…\)"),
        ("size", r"is corrupt \(\d+ bytes, expected \d+\)"),
        ("not a zip", r"is corrupt or incomplete \(not a valid zip: File is not a zip file\)"),
        ("damaged member", r"is corrupt or incomplete \(not a valid zip: .*"),
    ],
)
def test_corrupt_archive_is_refused_in_one_line_and_removed(
    corruption: str,
    message: str,
    server: tuple[ServerState, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, base = server
    if corruption == "hash":
        _register(monkeypatch, base, state.payload, sha256="ab" * 32)
    elif corruption == "size":
        _register(monkeypatch, base, state.payload, size=len(state.payload) + 1)
    else:  # no published hash or size: the zip itself must catch it
        state.payload = (
            b"<html>not found</html>" * 50
            if corruption == "not a zip"
            else _flip_member_byte(state.payload)
        )
        _register(monkeypatch, base, state.payload, sha256=None, size=None)
    assert main(["data", "download", NAME, "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"samic-vos: error: {FILENAME} from {base}")
    assert re.search(message, lines[0]) and lines[0].endswith("run again to download it anew")
    assert _left_in(downloads_dir()) == [] and _left_in(default_root()) == []


def _pngs(tree: Path, sequence: str) -> list[Path]:
    return sorted((tree / "Annotations" / "480p" / sequence).glob("*.png"))


@pytest.mark.parametrize(
    ("break_tree", "message"),
    [
        (
            lambda t: shutil.rmtree(t / "Annotations" / "480p" / "dogs"),
            r"Annotations/480p/dogs: folder of sequence 'dogs' \(listed in "
            r"ImageSets/2017/train.txt\) not found",
        ),
        (
            lambda t: (t / "Annotations" / "480p" / "bear" / "00001.png").unlink(),
            r"sequence 'bear' \(val\) has 3 frames but 2 annotations, not one per frame",
        ),
        (
            lambda t: [p.rename(p.with_suffix(".txt")) for p in _pngs(t, "cows")],
            r"Annotations/480p/cows: no .png annotations",
        ),
    ],
)
def test_inconsistent_tree_is_refused_naming_the_sequence(
    break_tree,
    message: str,
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    break_tree(source)
    state = ServerState(_zip(source), "/" + FILENAME)
    with local_server(state) as base:
        _register(monkeypatch, base, state.payload)
        assert main(["data", "download", NAME, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err)
    assert "is corrupt or incomplete" in err and ".unpacking-" not in err
    assert _left_in(downloads_dir()) == [] and _left_in(default_root()) == []


def test_interrupted_unpack_leaves_no_tree_and_is_redone(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, base = server
    _register(monkeypatch, base, state.payload)
    extract = zipfile.ZipFile.extract
    calls = []

    def interrupted(self: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> str:
        calls.append(member)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return extract(self, member, path)

    monkeypatch.setattr(zipfile.ZipFile, "extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_dataset(NAME)
    assert _left_in(default_root()) == []  # the 4 unpacked files went with their folder
    assert (downloads_dir() / FILENAME).read_bytes() == state.payload  # verified: kept

    # A process killed in mid-unpack leaves only its hidden scratch folder: the next run
    # removes it, unpacks from the kept archive (no new request) and completes.
    monkeypatch.setattr(zipfile.ZipFile, "extract", extract)
    stale = default_root() / f".{NAME}.unpacking-killed"
    (stale / "DAVIS" / "JPEGImages").mkdir(parents=True)
    target = ensure_dataset(NAME)
    assert _left_in(default_root()) == [NAME] and len(state.requests) == 1
    assert (target / "Annotations" / "480p" / "cows" / "00000.png").is_file()


def test_incomplete_folder_in_place_is_refused(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    state, base = server
    _register(monkeypatch, base, state.payload)
    target = default_root() / NAME
    shutil.copytree(source, target)
    (target / "ImageSets" / "2017" / "val.txt").write_text("bear\nlion\n")
    with pytest.raises(UserError) as err:
        ensure_dataset(NAME)
    assert str(err.value).startswith(f"{target}: not a complete {NAME} (")
    assert "sequence 'lion'" in str(err.value) and "remove the folder" in str(err.value)
    assert state.requests == []


def test_no_disk_space_is_refused_before_downloading(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, base = server
    _register(monkeypatch, base, state.payload, size=1 << 60)
    with pytest.raises(UserError, match=r"needs \d+ MiB but .* MiB free; free some space"):
        ensure_dataset(NAME)
    assert state.requests == []


def test_unknown_dataset_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "download", "davis-2019"]) == 2
    assert capsys.readouterr().err == (
        "samic-vos: error: unknown dataset 'davis-2019' "
        "(known: davis-2017-trainval-480p, davis-2016-trainval-480p, voc2012, sbd, coco2014-val, "
        "coco2014-train, coco2014-annotations, kvasir-seg)\n"
    )


def test_registry_entries_are_consistent() -> None:
    davis = ["davis-2017-trainval-480p", "davis-2016-trainval-480p"]
    assert list(ARCHIVES)[:2] == davis
    # Hosts that serve the official archive over HTTP only (the hashes guard the bytes).
    http_only = ("http://host.robots.ox.ac.uk/", "http://images.cocodataset.org/")
    for name, entry in ARCHIVES.items():
        assert entry.name == name and (entry.year in name if name in davis else entry.year is None)
        assert entry.url.startswith(("https://", *http_only))
        assert entry.url.endswith("/" + entry.filename)
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert (entry.size is None) == (entry.sha256 is None)
        assert entry.filename.endswith((".zip", ".tar", ".tgz"))
    assert ARCHIVES["davis-2017-trainval-480p"].size == 832_766_765
    assert ARCHIVES["voc2012"].size == 1_999_639_040 and ARCHIVES["sbd"].size == 1_419_539_633
    assert dataset_dir("coco2014-val", "/data") == Path("/data/COCO2014/val2014")
    assert dataset_dir("voc2012", "/data") == Path("/data/VOC2012")
    for year, name in DAVIS_BY_YEAR.items():
        assert ARCHIVES[name].year == year


def test_a_failed_download_leaves_no_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, `data download --root NEW/ROOT` stops in one line and leaves neither the root
    nor the cache's datasets/ and downloads/ folders behind."""
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    _register(monkeypatch, base, b"x")
    root = tmp_path / "new" / "root"
    assert main(["data", "download", NAME, "--root", str(root)]) == 2
    assert "could not be downloaded" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and not downloads_dir().exists()
    assert main(["data", "download", NAME]) == 2
    assert not default_root().exists() and not downloads_dir().exists()


def test_a_url_the_server_refuses_is_not_worth_a_rerun(
    server: tuple[ServerState, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """HTTP 404 (the archive moved): the line says so and how to fetch it by hand, not to run
    again; a cut connection still says to run again (test above)."""
    state, base = server
    entry = _register(monkeypatch, base, state.payload)
    monkeypatch.setattr(
        dataset_download, "ARCHIVES", {NAME: dataclasses.replace(entry, url=f"{base}/moved.zip")}
    )
    assert main(["data", "download", NAME]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "HTTP 404" in error[0], error
    assert "run again" not in error[0] and "yourself" in error[0], error


def test_a_read_only_root_is_one_line(
    tmp_path: Path, server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from mounts import readonly_folder

    state, base = server
    _register(monkeypatch, base, state.payload)
    with readonly_folder(tmp_path / "ro") as root:
        assert main(["data", "download", NAME, "--root", str(root)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"samic-vos: error: {root}: not writable (")
        assert "--root" in err[0]
    assert state.requests == []


def _with_members(data: bytes, extra: list[tuple[str, bytes]]) -> bytes:
    """The zip ``data`` with the members ``extra`` (name, bytes; a name ending in ``/``: a
    folder) appended."""
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as zf:
        for name, content in extra:
            zf.writestr(name, content)
    return buffer.getvalue()


def _tar_with_members(source: Path, extra: list[tuple[str, bytes]]) -> bytes:
    """``source``'s files in a tar under ``DAVIS/``, then ``extra`` (a name ending in ``/``: a
    folder)."""
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        tf.add(source, "DAVIS")
        for name, content in extra:
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            info.size = 0 if name.endswith("/") else len(content)
            tf.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _assert_refused_as_corrupt(err: str, filename: str, reason: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"samic-vos: error: {filename} from "), err
    assert "is corrupt or incomplete" in lines[0] and reason in lines[0], err
    assert lines[0].endswith("run again to download it anew")


@pytest.mark.parametrize("kind", ["zip", "tar"])
@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ([("DAVIS/notes", b"1"), ("DAVIS/notes/more", b"2")], "Not a directory"),
        ([("DAVIS/notes/", b""), ("DAVIS/notes", b"2")], "Is a directory"),
        ([("DAVIS/" + "n" * 300, b"1")], "File name too long"),
    ],
    ids=["file-then-folder", "folder-then-file", "name-too-long"],
)
def test_members_that_cannot_be_unpacked_are_refused_in_one_line(
    kind: str,
    extra: list[tuple[str, bytes]],
    reason: str,
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A hostile or broken archive whose member names cannot all be files (a file and a folder
    of one name, a name too long for the disk) is refused like any corrupt archive."""
    filename = f"tiny-davis.{kind}"
    if kind == "zip":
        payload = _with_members(_zip(source), extra)
    else:
        payload = _tar_with_members(source, extra)
        if reason == "Not a directory":  # a tar's file then folder: mkdir finds the file
            reason = "File exists"
    state = ServerState(payload, "/" + filename)
    with local_server(state) as base:
        url = f"{base}/{filename}"
        _register(monkeypatch, base, payload, filename=filename, url=url, sha256=None, size=None)
        assert main(["data", "download", NAME, "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_refused_as_corrupt(captured.err, filename, reason)
    assert _left_in(downloads_dir()) == [] and _left_in(default_root()) == []


def test_an_official_archive_whose_names_the_disk_cannot_hold_is_kept(
    source: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same names in a checksum-verified archive (the official bytes) are this disk's
    limit, not damage (eCryptfs: 143-byte names; a case-insensitive disk): one line naming the
    folder and how to go on, and the archive kept, so that a rerun elsewhere downloads nothing."""
    payload = _with_members(_zip(source), [("DAVIS/" + "n" * 300, b"1")])
    state = ServerState(payload, "/" + FILENAME)
    with local_server(state) as base:
        _register(monkeypatch, base, payload)  # with its SHA-256 and size
        assert main(["data", "download", NAME, "-q"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "File name too long" in error[0], error
    assert "cannot hold the archive's names" in error[0] and "another `root`" not in error[0]
    assert "--root" in error[0] and "corrupt" not in error[0], error
    assert _left_in(downloads_dir()) == [FILENAME] and _left_in(default_root()) == []


def _patch_central_header(data: bytes, offset: int, value: int) -> bytes:
    """``data`` (a zip) with the 2-byte field at ``offset`` of every central directory
    header set to ``value``."""
    changed = bytearray(data)
    start = changed.find(b"PK\x01\x02")
    while start != -1:
        changed[start + offset : start + offset + 2] = value.to_bytes(2, "little")
        start = changed.find(b"PK\x01\x02", start + 4)
    return bytes(changed)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (10, 99, "compression method is not supported"),  # AES, as 7-Zip and WinZip write
        (8, 1, "is encrypted, password required"),  # general purpose flag bit 0
    ],
    ids=["unsupported-compression", "encrypted"],
)
def test_a_zip_that_python_cannot_read_is_refused_in_one_line(
    field: int,
    value: int,
    reason: str,
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = _patch_central_header(_zip(source), field, value)
    state = ServerState(payload, "/" + FILENAME)
    with local_server(state) as base:
        _register(monkeypatch, base, payload, sha256=None, size=None)
        assert main(["data", "download", NAME, "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_refused_as_corrupt(captured.err, FILENAME, reason)
    assert _left_in(downloads_dir()) == [] and _left_in(default_root()) == []


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_full_disk_while_unpacking_is_one_line_and_the_archive_is_kept(
    kind: str,
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The disk fills up in mid-unpack (a .tgz's unpacked size is unknown beforehand): one line
    saying so, no half tree, the verified archive kept; once space is freed the rerun unpacks
    it without downloading it again."""
    import errno

    filename = f"tiny-davis.{kind}"
    payload = _zip(source) if kind == "zip" else _tar_with_members(source, [])
    written: list[str] = []

    def disk_fills_up(name: str) -> None:
        written.append(name)
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", name)

    extract, copy = zipfile.ZipFile.extract, shutil.copyfileobj
    if kind == "zip":

        def writer(self: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> str:
            disk_fills_up(str(Path(path) / member.filename))
            return extract(self, member, path)

        monkeypatch.setattr(zipfile.ZipFile, "extract", writer)
    else:

        def writer(source: io.BufferedReader, out: io.BufferedWriter, length: int = 0) -> None:
            disk_fills_up(out.name)
            copy(source, out, length)

        monkeypatch.setattr(shutil, "copyfileobj", writer)
    state = ServerState(payload, "/" + filename)
    with local_server(state) as base:
        _register(monkeypatch, base, payload, filename=filename, url=f"{base}/{filename}")
        assert main(["data", "download", NAME, "-q"]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"samic-vos: error: {default_root()}: ")
        assert "the disk is full (No space left on device); free some space" in lines[0], lines
        assert _left_in(default_root()) == []
        assert (downloads_dir() / filename).read_bytes() == payload
        monkeypatch.setattr(zipfile.ZipFile, "extract", extract)  # space freed
        monkeypatch.setattr(shutil, "copyfileobj", copy)
        assert main(["data", "download", NAME, "-q"]) == 0
    assert _files(default_root() / NAME) == _files(source) and len(state.requests) == 1


@pytest.mark.parametrize("year", ["2017", None], ids=["davis", "other"])
def test_a_file_where_the_dataset_goes_is_one_line(
    year: str | None,
    server: tuple[ServerState, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file (not a folder) at ``ROOT/NAME`` is refused in one line; nothing is downloaded."""
    state, base = server
    _register(monkeypatch, base, state.payload, year=year, required=("JPEGImages",))
    target = default_root() / NAME
    target.parent.mkdir(parents=True)
    target.write_text("not a dataset")
    assert main(["data", "download", NAME, "-q"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"samic-vos: error: {target}: not a complete ")
    assert lines[0].endswith("or pass another --root") and state.requests == []
    assert target.read_text() == "not a dataset"


class _SmallDisk:
    """A buffered file opened for writing on a disk with ``room`` bytes left: what fits is
    written, then ENOSPC."""

    def __init__(self, raw: io.BufferedWriter, room: int) -> None:
        self.raw, self.room = raw, room

    def write(self, data: bytes) -> int:
        import errno
        import os

        written = self.raw.write(data[: self.room])
        self.room -= written
        if written < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return written

    def __enter__(self) -> _SmallDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()


def test_a_full_disk_while_downloading_is_one_line_and_the_rerun_resumes(
    server: tuple[ServerState, str],
    source: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The disk fills up in mid-download: one line saying so (running again alone would not
    help), the bytes that fit kept in the .part file, which the rerun resumes."""
    state, base = server
    _register(monkeypatch, base, state.payload)
    room = len(state.payload) // 3
    real_open = Path.open

    def small_disk_open(self: Path, mode: str = "r", *args: object, **kwargs: object):
        opened = real_open(self, mode, *args, **kwargs)
        writing = self.suffix == ".part" and mode in ("wb", "ab")
        return _SmallDisk(opened, room) if writing else opened

    monkeypatch.setattr(Path, "open", small_disk_open)
    assert main(["data", "download", NAME, "-q"]) == 2
    part = downloads_dir() / (FILENAME + ".part")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0] == (
        f"samic-vos: error: {part}: cannot write it, the disk is full (No space left on "
        "device); free some space or choose an output on another disk"
    )
    assert part.read_bytes() == state.payload[:room] and _left_in(default_root()) == []
    monkeypatch.setattr(Path, "open", real_open)  # space freed
    assert main(["data", "download", NAME, "-q"]) == 0
    assert state.ranges() == [None, f"bytes={room}-"]
    assert _files(default_root() / NAME) == _files(source)


def test_a_folder_where_the_archive_goes_is_one_line_before_downloading(
    server: tuple[ServerState, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, base = server
    _register(monkeypatch, base, state.payload)
    archive = downloads_dir() / FILENAME
    archive.mkdir(parents=True)
    assert main(["data", "download", NAME, "-q"]) == 2
    assert capsys.readouterr().err == (
        f"samic-vos: error: {archive}: is a folder, not the downloaded file; move it away and "
        "run again\n"
    )
    assert state.requests == [] and archive.is_dir() and _left_in(default_root()) == []


def test_two_roots_downloading_one_archive_at_once_both_complete(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: Path
) -> None:
    """Two processes download the same dataset into two roots at once: the second waits while
    the first unpacks (and deletes) the shared archive, instead of unpacking a file the first
    deletes under it (FileNotFoundError), then gets its own copy."""
    import threading

    state, base = server
    _register(monkeypatch, base, state.payload)
    unpack = dataset_download._unpack
    first_unpacking, first_done = threading.Event(), threading.Event()

    def unpack_in_turn(entry: DatasetArchive, archive: Path, target: Path) -> dict[str, int]:
        if target.parent.name == "first":
            first_unpacking.set()
            time.sleep(0.3)  # time for the second to reach its own unpack, were it allowed
        else:
            assert first_done.wait(10)
        return unpack(entry, archive, target)

    monkeypatch.setattr(dataset_download, "_unpack", unpack_in_turn)
    results: dict[str, object] = {}

    def download(root: str) -> None:
        try:
            results[root] = ensure_dataset(NAME, tmp_path / root)
        except Exception as err:  # reported by the assertion below
            results[root] = err
        finally:
            if root == "first":
                first_done.set()

    first = threading.Thread(target=download, args=("first",))
    first.start()
    assert first_unpacking.wait(10)
    second = threading.Thread(target=download, args=("second",))
    second.start()
    first.join(10)
    second.join(10)
    assert results == {root: tmp_path / root / NAME for root in ("first", "second")}
    for root in ("first", "second"):
        assert _files(tmp_path / root / NAME) == _files(source)
    assert _left_in(downloads_dir()) == []
