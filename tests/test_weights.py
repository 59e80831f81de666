"""The weights registry against a local HTTP server on 127.0.0.1 serving a small checkpoint."""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import re
import shutil
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from http_server import ServerState, isolate, local_server

from samic_vos.commands.cli import main
from samic_vos.hub import weights
from samic_vos.hub.weights import REGISTRY, WeightsEntry, cache_dir, load_checkpoint, resolve
from samic_vos.runtime import console
from samic_vos.runtime.errors import UserError
from samic_vos.sam.names import SAM_MODELS

FLAG = "--tiny-weights"
FILENAME = "tiny_weights.pth"


@pytest.fixture(scope="module")
def payload() -> bytes:
    """A real (small, ~300 kB) checkpoint: a state dict saved by torch.save."""
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(75_000, dtype=torch.float32)}, buffer)
    return buffer.getvalue()


@pytest.fixture
def server(payload: bytes) -> Iterator[tuple[ServerState, str]]:
    """An HTTP server on 127.0.0.1 serving the payload as /tiny_weights.pth."""
    state = ServerState(payload, "/" + FILENAME)
    with local_server(state) as base:
        yield state, base


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The cache under tmp_path; no proxy between us and 127.0.0.1; notes on stderr as in a
    CLI run (whether or not an earlier test ran the CLI, which configures logging)."""
    console.configure()
    isolate(monkeypatch, tmp_path / "home")


def _register(monkeypatch: pytest.MonkeyPatch, url: str, data: bytes, **changes: object) -> None:
    entry = WeightsEntry(
        "tiny", FILENAME, url, hashlib.sha256(data).hexdigest(), "test weights", len(data)
    )
    monkeypatch.setattr(weights, "REGISTRY", {"tiny": WeightsEntry(**{**vars(entry), **changes})})


@pytest.fixture
def tiny(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[ServerState, Path]:
    """Registry entry "tiny" pointing at the server; returns (server state, cached path)."""
    state, base = server
    _register(monkeypatch, f"{base}/{FILENAME}", state.payload)
    return state, cache_dir() / FILENAME


def test_download_verifies_caches_and_loads(tiny: tuple[ServerState, Path]) -> None:
    state, final = tiny
    assert weights.cache_state("tiny") == "no"
    path = resolve("tiny", flag=FLAG)
    assert path == final and path.read_bytes() == state.payload
    assert state.ranges() == [None]
    # Nothing else stays in the cache: no .part, no .lock.
    assert sorted(p.name for p in final.parent.iterdir()) == [FILENAME, "verified.json"]
    assert weights.cache_state("tiny") == "yes"
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(75_000, dtype=torch.float32))


def test_cached_file_reused_without_request_or_rehash(
    tiny: tuple[ServerState, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, final = tiny
    resolve("tiny", flag=FLAG)
    state.requests.clear()

    def no_hashing(*args: object) -> str:
        raise AssertionError("an unchanged verified file was hashed again")

    monkeypatch.setattr(weights, "sha256_file", no_hashing)
    assert resolve("tiny", flag=FLAG) == final
    assert weights.download("tiny") == final
    assert state.requests == []


def test_changed_cached_file_is_rehashed_and_downloaded_again(
    tiny: tuple[ServerState, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state, final = tiny
    resolve("tiny", flag=FLAG)
    corrupt = bytearray(state.payload)
    corrupt[1000] ^= 0xFF  # same size, different bytes, new mtime
    final.write_bytes(bytes(corrupt))
    os.utime(final, ns=(1, 1))
    state.requests.clear()
    with pytest.raises(UserError, match="checksum differs.*--force"):
        resolve("tiny", flag=FLAG, download=False)
    assert resolve("tiny", flag=FLAG).read_bytes() == state.payload
    assert state.ranges() == [None]
    assert "downloading it again" in capsys.readouterr().err


def test_resume_from_existing_part(tiny: tuple[ServerState, Path]) -> None:
    state, final = tiny
    final.parent.mkdir(parents=True)
    final.with_name(FILENAME + ".part").write_bytes(state.payload[:100_000])
    assert resolve("tiny", flag=FLAG).read_bytes() == state.payload
    assert state.ranges() == ["bytes=100000-"]
    assert not final.with_name(FILENAME + ".part").exists()


def test_dropped_connection_keeps_part_and_next_call_resumes(
    tiny: tuple[ServerState, Path],
) -> None:
    state, final = tiny
    part = final.with_name(FILENAME + ".part")
    state.cut_at = 120_000
    with pytest.raises(UserError, match="could not be downloaded") as err:
        resolve("tiny", flag=FLAG)
    assert "connection closed after 120000" in str(err.value)
    assert part.stat().st_size == 120_000 and not final.exists()
    assert weights.cache_state("tiny") == f"partial {100 * 120_000 // len(state.payload)}%"
    state.cut_at = None
    assert resolve("tiny", flag=FLAG).read_bytes() == state.payload
    assert state.ranges() == [None, "bytes=120000-"]


def test_server_ignoring_range_gets_a_fresh_download(tiny: tuple[ServerState, Path]) -> None:
    state, final = tiny
    final.parent.mkdir(parents=True)
    final.with_name(FILENAME + ".part").write_bytes(b"stale bytes")
    state.ignore_range = True
    assert resolve("tiny", flag=FLAG).read_bytes() == state.payload
    assert state.ranges() == ["bytes=11-"]


def test_checksum_mismatch_is_refused_and_removed(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, base = server
    _register(monkeypatch, f"{base}/{FILENAME}", state.payload, sha256="ab" * 32)
    with pytest.raises(UserError) as err:
        resolve("tiny", flag=FLAG)
    message = str(err.value)
    assert f"downloaded {FILENAME} from {base}/{FILENAME} but its SHA-256" in message
    assert "not the official abababababab" in message and f"pass {FLAG} PATH" in message
    assert "\n" not in message
    assert not cache_dir().exists()  # the removed download leaves no (empty) cache folder


def test_server_down_names_file_url_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{FILENAME}"
    _register(monkeypatch, url, b"x")
    with pytest.raises(UserError) as err:
        resolve("tiny", flag=FLAG)
    assert str(err.value) == (
        f"{FILENAME} is not in the cache ({cache_dir()}) and could not be downloaded from "
        f"{url} (Connection refused); download it yourself and pass {FLAG} PATH"
    )


def test_failed_offline_download_leaves_nothing_in_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _register(monkeypatch, f"http://127.0.0.1:{port}/{FILENAME}", b"x")
    with pytest.raises(UserError, match="Connection refused"):
        resolve("tiny", flag=FLAG)
    assert not (tmp_path / "home").exists()  # the cache folders it made are gone too
    cache_dir().mkdir(parents=True)
    with pytest.raises(UserError, match="Connection refused"):
        resolve("tiny", flag=FLAG)
    assert list(cache_dir().iterdir()) == []  # no zero-byte .lock file


def test_a_waiting_process_relocks_a_lock_file_removed_by_its_holder(
    tiny: tuple[ServerState, Path],
) -> None:
    """Two downloads of one file never run at once, although each removes its lock file."""
    import fcntl
    import time

    state, final = tiny
    final.parent.mkdir(parents=True)
    lock = final.with_name(f".{FILENAME}.lock")
    holder = lock.open("a")
    fcntl.flock(holder, fcntl.LOCK_EX)  # another process is downloading
    result: list[Path] = []
    waiter = threading.Thread(target=lambda: result.append(resolve("tiny", flag=FLAG)))
    waiter.start()
    time.sleep(0.5)
    assert state.requests == [] and not result  # waiting for the holder
    final.write_bytes(state.payload)  # the holder finishes the file, removes its lock file
    lock.unlink()
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    waiter.join(timeout=10)
    assert result == [final] and state.requests == []  # it saw the finished file
    assert not lock.exists()


def test_http_error_and_not_cached_without_download(
    server: tuple[ServerState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, base = server
    _register(monkeypatch, f"{base}/missing.pth", b"x")
    with pytest.raises(UserError, match=r"\(HTTP 404 Not Found\)"):
        resolve("tiny", flag=FLAG)
    state.requests.clear()
    with pytest.raises(UserError, match=f"run `samic-vos weights download tiny`, or pass {FLAG}"):
        resolve("tiny", flag=FLAG, download=False)
    assert state.requests == []


def test_not_enough_disk_space_is_refused_before_downloading(
    tiny: tuple[ServerState, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = tiny
    entry = weights.REGISTRY["tiny"]
    monkeypatch.setitem(weights.REGISTRY, "tiny", WeightsEntry(**{**vars(entry), "size": 1 << 60}))
    with pytest.raises(UserError, match=r"needs \d+ MiB but .* MiB free"):
        resolve("tiny", flag=FLAG)
    assert state.requests == []


def test_resolve_with_local_path(
    tiny: tuple[ServerState, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, _ = tiny
    official = tmp_path / "mine" / FILENAME
    official.parent.mkdir()
    official.write_bytes(state.payload)
    assert resolve("tiny", official, flag=FLAG) == official

    own = tmp_path / "finetuned.pth"
    own.write_bytes(b"my own weights")
    assert resolve("tiny", own, flag=FLAG) == own
    assert f"{FLAG} {own}: not the official {FILENAME}; used as is, unverified" in (
        capsys.readouterr().err
    )

    official.write_bytes(state.payload[:-10])  # truncated copy under the official name
    with pytest.raises(UserError, match=r"not the official .*bytes, expected .*corrupt"):
        resolve("tiny", official, flag=FLAG)
    same_size = tmp_path / "renamed.pth"
    same_size.write_bytes(bytes(len(state.payload)))
    with pytest.raises(UserError, match=r"SHA-256 [0-9a-f]{12}…, expected"):
        resolve("tiny", same_size, flag=FLAG)
    with pytest.raises(UserError, match=f"{FLAG} .*nowhere.pth: file not found"):
        resolve("tiny", tmp_path / "nowhere.pth", flag=FLAG)
    assert state.requests == []


def test_cli_list_path_download(
    tiny: tuple[ServerState, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state, final = tiny
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^tiny\s+{FILENAME}\s+\d+ MiB\s+no\s+test weights$", out, re.M)
    assert f"cache folder: {cache_dir()}" in out

    assert main(["weights", "path", "tiny"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"samic-vos: error: {FILENAME} is not in the cache ({cache_dir()}); "
        "run `samic-vos weights download tiny`\n"
    )

    assert main(["weights", "download", "tiny"]) == 0
    assert capsys.readouterr().out == f"{final}\n"
    assert final.read_bytes() == state.payload

    assert main(["weights", "path", "tiny"]) == 0
    assert capsys.readouterr().out == f"{final}\n"
    assert main(["weights", "list"]) == 0
    assert re.search(r"^tiny\s+\S+\s+\d+ MiB\s+yes\s", capsys.readouterr().out, re.M)

    assert main(["weights", "download", "tiny", "--force"]) == 0
    assert state.ranges() == [None, None]


@pytest.mark.parametrize("action", ["path", "download"])
def test_cli_unknown_name_is_one_line(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", action, "sam_vit_x"]) == 2
    assert capsys.readouterr().err == (
        "samic-vos: error: unknown weights 'sam_vit_x' "
        "(known: sam_vit_b, sam_vit_l, sam_vit_h, resnet50_imagenet, sam2.1_hiera_t, "
        "sam2.1_hiera_s, sam2.1_hiera_b+, sam2.1_hiera_l, sam_hq_vit_b, sam_hq_vit_l, "
        "sam_hq_vit_h, medsam_vit_b)\n"
    )


def test_load_checkpoint(tmp_path: Path) -> None:
    good = tmp_path / "state.pth"
    torch.save({"layer.weight": torch.ones(2, 3), "step": 7}, good)
    state = load_checkpoint(good)
    assert state["step"] == 7 and torch.equal(state["layer.weight"], torch.ones(2, 3))
    assert load_checkpoint(good, map_location="meta")["layer.weight"].is_meta

    # Our own one line for each damaged file, none of PyTorch's paragraphs.
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(4)}, legacy, _use_new_zipfile_serialization=False)
    damaged = {
        "garbage.pth": (b"definitely not a checkpoint" * 10, "not a PyTorch checkpoint"),
        "pickle.pth": (pickle.dumps({"w": 1}, protocol=4), "not a PyTorch checkpoint"),
        "empty.pth": (b"", "the checkpoint file is empty (0 bytes)"),
        "truncated.pth": (good.read_bytes()[:200], "truncated or corrupt (its zip archive"),
        "cut_end.pth": (good.read_bytes()[:-10], "truncated or corrupt (its zip archive"),
        "legacy_cut.pth": (legacy.read_bytes()[:300], "legacy torch.save format) is truncated"),
    }
    for name, (data, problem) in damaged.items():
        (tmp_path / name).write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning reaches the user either
            with pytest.raises(UserError) as info:
                load_checkpoint(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: ") and problem in message, message
        assert "\n" not in message and "issue" not in message and "miniz" not in message

    objects = tmp_path / "objects.pth"
    torch.save({"args": argparse.Namespace(lr=1e-3)}, objects)
    with pytest.raises(UserError, match=r"holds a Python object \(argparse.Namespace\)"):
        load_checkpoint(objects)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(UserError, match="expected a checkpoint dict, found Tensor"):
        load_checkpoint(tensor)
    with pytest.raises(UserError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "missing.pth")


def test_cache_dir_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache_dir() == tmp_path / "home" / "weights"
    monkeypatch.delenv("SAMIC_VOS_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "samic-vos" / "weights"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cache_dir() == tmp_path / "user" / ".cache" / "samic-vos" / "weights"


def test_registry_entries_are_consistent() -> None:
    verified = ["sam_vit_b", "sam_vit_l", "sam_vit_h", "resnet50_imagenet"]
    # Their authors publish no SHA-256: the user downloads them (never done by us unverified).
    unpublished = [
        *(f"sam2.1_hiera_{s}" for s in ("t", "s", "b+", "l")),
        *(f"sam_hq_vit_{s}" for s in ("b", "l", "h")),
        "medsam_vit_b",
    ]
    assert list(REGISTRY) == verified + unpublished
    for name, entry in REGISTRY.items():
        assert entry.name == name and entry.licence
        assert entry.url.startswith("https://")
        if name in verified:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
            assert entry.url.endswith("/" + entry.filename)
            assert entry.size and entry.size > 10_000_000
        else:
            assert entry.sha256 is None
    # Every named segmenter with official weights has its entry.
    assert {m.weights for m in SAM_MODELS.values() if m.weights} <= set(REGISTRY)
    # torchvision names its files <name>-<first 8 hex of the SHA-256>.pth
    resnet = REGISTRY["resnet50_imagenet"]
    assert resnet.sha256.startswith(resnet.filename.removesuffix(".pth").split("-")[1])
    assert REGISTRY["sam_vit_b"].sha256.startswith("ec2df627")


def test_cli_list_gives_the_urls_of_the_files_it_does_not_download(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The files without a published SHA-256 are never downloaded by us; `list` gives their
    URLs, as the README and `weights --help` say, so the user can fetch them."""
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for entry in REGISTRY.values():
        listed = re.search(rf"^{re.escape(entry.name)}\s+{re.escape(entry.url)}$", out, re.M)
        assert (listed is not None) == (entry.sha256 is None), entry.name


def _closed_port_url(name: str) -> str:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/{name}"


def test_offline_a_mismatched_cached_file_is_kept(
    tiny: tuple[ServerState, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached file whose checksum differs is replaced only by a verified download: offline,
    it stays (byte for byte), and the one line says so and what to do."""
    state, final = tiny
    resolve("tiny", flag=FLAG)
    final.write_bytes(state.payload[:-1] + b"!")
    _register(monkeypatch, _closed_port_url(FILENAME), state.payload)
    for attempt in (lambda: resolve("tiny", flag=FLAG), lambda: weights.download("tiny")):
        with pytest.raises(UserError) as err:
            attempt()
        assert str(err.value).startswith(f"{final}: not the official {FILENAME} (kept as it is)")
        assert f"pass {FLAG} PATH" in str(err.value) or "copy it to" in str(err.value)
        assert final.read_bytes() == state.payload[:-1] + b"!"


def test_offline_force_download_keeps_the_verified_copy(
    tiny: tuple[ServerState, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, final = tiny
    resolve("tiny", flag=FLAG)
    _register(monkeypatch, _closed_port_url(FILENAME), state.payload)
    with pytest.raises(UserError, match="could not be downloaded"):
        weights.download("tiny", force=True)
    assert final.read_bytes() == state.payload
    assert resolve("tiny", flag=FLAG) == final


def test_track_offline_keeps_a_mismatched_cached_sam_checkpoint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The newcomer's case: `track` with a cached SAM checkpoint that is not the official file,
    offline. Before, the file was deleted before any download succeeded."""
    entry = REGISTRY["sam_vit_b"]
    offline = WeightsEntry(**{**vars(entry), "url": _closed_port_url(entry.filename)})
    monkeypatch.setattr(weights, "REGISTRY", {**REGISTRY, "sam_vit_b": offline})
    cached = cache_dir() / entry.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not SAM" * 1000)
    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (32, 24)).save(frames / "00000.jpg")
    mask = tmp_path / "mask.png"
    Image.new("L", (32, 24), 1).save(mask)
    out = tmp_path / "out"
    code = main(["track", str(frames), "--first-mask", str(mask), "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"{cached}: not the official {entry.filename} (kept as it is)" in err[0]
    assert "--sam-checkpoint PATH" in err[0]
    assert cached.read_bytes() == b"not SAM" * 1000
    assert not out.exists()


def test_weights_without_a_published_sha256_are_not_downloaded(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path))
    with pytest.raises(UserError) as err:
        weights.resolve("sam2.1_hiera_t", flag="`sam_checkpoint`")
    message = str(err.value)
    assert "publish no SHA-256" in message and "sam2.1_hiera_tiny.pt" in message
    assert "pass it with `sam_checkpoint` PATH" in message and "\n" not in message
    assert not (tmp_path / "weights").exists()
    own = tmp_path / "sam2.1_hiera_tiny.pt"
    own.write_bytes(b"x")
    assert weights.resolve("sam2.1_hiera_t", own, flag="`sam_checkpoint`") == own


def test_cli_takes_sam_model_names(capsys: pytest.CaptureFixture[str]) -> None:
    """`weights path|download` take the names `--sam-model` takes (vit_b, sam2.1_hiera_tiny,
    hq_vit_b ...), each as its checkpoint's registry entry."""
    assert main(["weights", "path", "vit_b"]) == 2
    assert capsys.readouterr().err == (
        f"samic-vos: error: sam_vit_b_01ec64.pth is not in the cache ({cache_dir()}); "
        "run `samic-vos weights download sam_vit_b`\n"
    )
    copied = cache_dir() / "sam2.1_hiera_tiny.pt"  # what the message of a sam2 model says to do
    copied.parent.mkdir(parents=True)
    copied.write_bytes(b"weights copied by hand")
    for name in ("sam2.1_hiera_tiny", "sam2.1_hiera_t"):
        assert main(["weights", "path", name]) == 0
        assert capsys.readouterr().out == f"{copied}\n"
    assert main(["weights", "download", "hq_vit_b"]) == 2
    assert "publish no SHA-256" in capsys.readouterr().err


def test_a_folder_where_the_checkpoint_goes_is_one_line_before_downloading(
    tiny: tuple[ServerState, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder at the cached file's name would make the final rename fail after the whole
    download, on every run: refused in one line, nothing downloaded."""
    state, final = tiny
    (final / "something").mkdir(parents=True)
    assert main(["weights", "download", "tiny", "-q"]) == 2
    assert capsys.readouterr().err == (
        f"samic-vos: error: {final}: is a folder, not the downloaded file; move it away and "
        "run again\n"
    )
    assert state.requests == [] and (final / "something").is_dir()


def test_force_download_leaves_another_process_s_partial_file_alone(
    tiny: tuple[ServerState, Path],
) -> None:
    """`weights download --force` started while another process downloads the same file waits
    for it instead of deleting the .part file that process is writing (which then failed on
    its checksum step); once the lock is free it downloads afresh."""
    import time

    from samic_vos.hub.fetch import download_lock

    state, final = tiny
    final.parent.mkdir(parents=True)
    part = final.with_name(FILENAME + ".part")
    result: list[Path] = []
    with download_lock(final):  # another process is downloading
        part.write_bytes(state.payload[:1000])
        forced = threading.Thread(
            target=lambda: result.append(weights.download("tiny", force=True))
        )
        forced.start()
        time.sleep(0.5)
        assert part.read_bytes() == state.payload[:1000] and not result
        final.write_bytes(state.payload)  # the other process finishes its file
        part.unlink()
    forced.join(timeout=10)
    assert result == [final] and final.read_bytes() == state.payload
    assert state.ranges() == [None]  # afresh, as --force asks


def test_a_waiting_process_goes_on_when_the_holder_removed_the_folder(tmp_path: Path) -> None:
    """A first download that fails removes the cache folder it made (lock file included) while
    another process waits on its lock: the waiter goes on in a folder made anew, not a
    FileNotFoundError traceback."""
    from samic_vos.hub.fetch import download_lock

    folder = tmp_path / "weights"
    folder.mkdir()
    final = folder / FILENAME
    locked, inside = threading.Event(), []

    def waiter() -> None:
        locked.wait(5)
        with download_lock(final):
            inside.append(folder.is_dir())

    second = threading.Thread(target=waiter)
    with download_lock(final):
        second.start()
        locked.set()
        second.join(timeout=0.5)  # it waits on the lock
        assert second.is_alive()
        shutil.rmtree(folder)  # the holder's failed first download leaves no empty cache
    second.join(timeout=10)
    assert inside == [True]


def test_a_read_only_cache_is_one_line_naming_it_and_the_flag(
    tiny: tuple[ServerState, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A cache folder that cannot be written (a shared read-only mount) stops a download in
    one line naming the folder and the ways out; nothing is requested."""
    from mounts import readonly_folder

    state, final = tiny
    with readonly_folder(cache_dir()):
        with pytest.raises(UserError) as err:
            resolve("tiny", flag=FLAG)
        message = str(err.value)
        assert message.startswith(f"{cache_dir()}: not writable (") and "\n" not in message
        assert message.endswith(
            f"set SAMIC_VOS_HOME to a writable folder, or download {FILENAME} yourself and "
            f"pass {FLAG} PATH"
        )
        assert main(["weights", "download", "tiny", "-q"]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert state.requests == []
