"""Damaged inputs, full disks, unwritable outputs and SIGTERM, through the CLI.

Each ends in one line on stderr (read from the file descriptor, so that a C library's own
output would be seen too), exit status 2 (143 for SIGTERM), no traceback, and leaves only
complete files: nothing at all when it is refused before the work, the finished frames when it
happens during the work.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from damaged_files import corrupt_video, cut_video
from mounts import readonly_folder, tmpfs
from PIL import Image

from samic_vos.commands.cli import main
from samic_vos.data.frame_source import decord_available
from samic_vos.data.mask_io import read_mask
from samic_vos.runtime import atomic

BEAR_FRAMES = 82
VIDEO_BACKENDS = [
    "pyav",
    pytest.param("decord", marks=pytest.mark.skipif(not decord_available(), reason="no decord")),
]


# A tqdm bar of ours: "track:  50%|█████     | 41/82 [...]" or "track: 3frame [...]".
PROGRESS_BAR = re.compile(r"^(track|render|adapting SAMIC on frame 0): +(\d+%\||\d+\w* \[)")


def one_error_line(capfd) -> str:
    """Our error line, the last on stderr; every other line is a note or a progress bar of ours
    (not a line of FFmpeg, decord, PyTorch or a traceback)."""
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    foreign = [
        line
        for line in lines
        if not line.startswith("samic-vos: ") and not PROGRESS_BAR.match(line)
    ]
    assert foreign == [], foreign
    errors = [line for line in lines if line.startswith("samic-vos: error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], lines
    return errors[0]


def files_under(folder: Path) -> list[str]:
    """Every file and folder below ``folder``, hidden ones included, relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def frame_folder(tmp_path: Path, shared_data: Path, count: int) -> Path:
    frames = tmp_path / "frames"
    frames.mkdir()
    for jpeg in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:count]:
        shutil.copy(jpeg, frames / jpeg.name)
    return frames


def track_args(video: Path, shared_data: Path, out: Path, models: dict[str, Path]) -> list[str]:
    first = shared_data / "videos/davis_bear_first_mask.png"
    return [
        "track",
        str(video),
        "--first-mask",
        str(first),
        "-o",
        str(out),
        "--samic",
        str(models["samic"]),
        "--sam-checkpoint",
        str(models["sam"]),
    ]


def assert_complete_frames(out: Path) -> list[str]:
    """The run's masks are whole PNGs of consecutive frames with their prompts lines; no
    temporary file anywhere. Returns the mask names."""
    names = sorted(p.stem for p in (out / "masks").iterdir())
    assert names == [f"{i:05d}" for i in range(len(names))]
    for name in names:
        assert read_mask(out / "masks" / f"{name}.png").shape == (480, 854)
    text = (out / "prompts.jsonl").read_text()
    assert text == "" or text.endswith("\n")
    frames = [json.loads(line)["frame"] for line in text.splitlines()]
    # A frame's mask is written just before its prompts line.
    assert frames == names[: len(frames)] and len(names) - len(frames) in (0, 1)
    assert not [p for p in out.rglob(".*")], "temporary files left"
    return names


# --- damaged videos and checkpoints ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_track_of_a_cut_short_video_names_both_counts(
    tmp_path, shared_data, tiny_models, capfd, backend
):
    # Half of the bytes: decord still opens it (at 30% it refuses the file outright).
    cut = cut_video(shared_data / "videos/davis_bear.mp4", tmp_path, 0.5)
    out = tmp_path / "out"
    code = main([*track_args(cut, shared_data, out, tiny_models), "--backend", backend])
    message = one_error_line(capfd)
    assert code == 2
    names = assert_complete_frames(out)
    assert 0 < len(names) < BEAR_FRAMES
    assert f"{cut}: the video ends after {len(names)} frames but declares {BEAR_FRAMES}" in message
    assert len((out / "prompts.jsonl").read_text().splitlines()) == len(names)


@pytest.mark.parametrize("command", ["track", "render"])
def test_corrupt_video_is_exactly_one_line(tmp_path, shared_data, tiny_models, capfd, command):
    bad = corrupt_video(shared_data / "videos/davis_bear.mp4", tmp_path)
    out = tmp_path / "out"
    if command == "track":
        code = main(track_args(bad, shared_data, out, tiny_models))
    else:
        masks = shared_data / "DAVIS/Annotations/480p/bear"
        code = main(["render", str(bad), str(masks), "-o", str(tmp_path / "o.mp4"), "--quiet"])
    message = one_error_line(capfd)  # no FFmpeg or decord lines besides ours
    assert code == 2 and f"{bad}: frame " in message and "cannot be decoded" in message
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("flag", ["--samic", "--sam-checkpoint"])
def test_corrupt_checkpoint_is_one_line_naming_the_file(
    tmp_path, shared_data, tiny_models, capfd, flag
):
    key = "samic" if flag == "--samic" else "sam"
    broken = tmp_path / f"broken_{key}.pt"
    broken.write_bytes(tiny_models[key].read_bytes()[:-100])  # an interrupted copy
    models = {**tiny_models, key: broken}
    out = tmp_path / "out"
    code = main(track_args(frame_folder(tmp_path, shared_data, 2), shared_data, out, models))
    message = one_error_line(capfd)
    assert code == 2
    assert message.startswith(f"samic-vos: error: {broken}: the checkpoint is truncated")
    assert "weights_only" not in message and "issue" not in message
    assert not out.exists()  # refused before any output


# --- full disk ---------------------------------------------------------------------------------


class FullDisk:
    """A raw file with ``room`` bytes left on its disk: a short write, then ENOSPC."""

    def __init__(self, raw, room: int) -> None:
        self.raw, self.room = raw, room

    def write(self, data: bytes) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.raw.write(data[: self.room])
        self.room -= written
        return written

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


def test_full_disk_while_writing_prompts_leaves_whole_lines(
    tmp_path, shared_data, tiny_models, capfd, monkeypatch
):
    def small_disk_open(*args, **kwargs):
        return FullDisk(open(*args, **kwargs), room=250)  # about two lines

    monkeypatch.setattr(atomic, "open", small_disk_open, raising=False)
    out = tmp_path / "out"
    code = main(track_args(frame_folder(tmp_path, shared_data, 5), shared_data, out, tiny_models))
    message = one_error_line(capfd)
    assert code == 2
    assert f"{out / 'prompts.jsonl'}: cannot write it, the disk is full" in message
    names = assert_complete_frames(out)
    lines = (out / "prompts.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 5 and len(names) == len(lines) + 1  # the failed frame's mask


def test_full_disk_while_writing_a_mask_leaves_whole_masks(
    tmp_path, shared_data, tiny_models, capfd, monkeypatch
):
    saves = []
    real_save = Image.Image.save

    def save(self, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) == 3:  # the third mask: half of it fits
            Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n half a mask")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    out = tmp_path / "out"
    code = main(track_args(frame_folder(tmp_path, shared_data, 5), shared_data, out, tiny_models))
    message = one_error_line(capfd)
    assert code == 2
    assert f"{out / 'masks' / '00002.png'}: cannot write it, the disk is full" in message
    assert assert_complete_frames(out) == ["00000", "00001"]


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[Path]:
    """A folder on a 64 KiB tmpfs: a disk that fills after a few masks."""
    folder = tmp_path / "tiny_disk"
    folder.mkdir()
    with tmpfs(folder, "size=64k"):
        yield folder


@pytest.mark.slow
def test_real_full_disk_during_track_leaves_only_complete_files(
    tmp_path, shared_data, tiny_models, capfd, tiny_disk
):
    out = tiny_disk / "out"
    args = track_args(frame_folder(tmp_path, shared_data, 20), shared_data, out, tiny_models)
    code = main(args)
    message = one_error_line(capfd)
    assert code == 2 and "cannot write it, the disk is full" in message
    assert f"{out}" in message
    assert 0 < len(assert_complete_frames(out)) < 20


def test_real_full_disk_while_writing_the_overlay(
    tmp_path, shared_data, tiny_models, capfd, tiny_disk
):
    out, overlay = tmp_path / "out", tiny_disk / "overlay.mp4"
    args = track_args(frame_folder(tmp_path, shared_data, 20), shared_data, out, tiny_models)
    code = main([*args, "--overlay", str(overlay)])
    message = one_error_line(capfd)
    assert code == 2 and f"{overlay}: cannot write it, the disk is full" in message
    assert files_under(tiny_disk) == []  # no overlay, no temporary file
    assert 0 < len(assert_complete_frames(out)) < 20


# --- render and eval: inputs and outputs refused before the work -------------------------------


@pytest.fixture
def render_inputs(tmp_path) -> tuple[Path, Path]:
    """A folder of 3 frames (40x60) and their masks."""
    from samic_vos.data.mask_io import write_mask

    frames, masks = tmp_path / "frames", tmp_path / "masks"
    frames.mkdir()
    masks.mkdir()
    for i in range(3):
        Image.new("RGB", (60, 40), (90, 140, 200)).save(frames / f"{i:05d}.png")
        ids = np.zeros((40, 60), np.uint8)
        ids[10:30, 10:30] = 1
        write_mask(masks / f"{i:05d}.png", ids)
    return frames, masks


@pytest.fixture
def no_drawing(monkeypatch):
    """Fail the test if a frame is drawn: the refusal must come before the render."""

    def draw(*args, **kwargs):
        raise AssertionError("a frame was drawn before the refusal")

    monkeypatch.setattr("samic_vos.reports.render.overlay", draw)


def _prompts(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


POINT = {"frame": "00001", "objects": {"1": {"points": [[20.0, 15.0]], "scores": [0.9]}}}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a text file"),
        (_prompts(POINT).encode() + b'{"frame": "00002", "obj', "the last line is cut short"),
        (
            _prompts({"frame": "00099", "objects": {}}).encode(),
            "frame '00099' is not a frame of",
        ),
        (
            _prompts({"frame": "00001", "objects": {"1": {"points": [[700.5, 15.0]]}}}).encode(),
            "has the point (700.5, 15), outside the 60x40 frames",
        ),
    ],
    ids=["binary", "cut_short", "other_frames", "other_size"],
)
def test_render_refuses_bad_points_before_drawing(
    tmp_path, render_inputs, capfd, no_drawing, content, problem
):
    frames, masks = render_inputs
    points = tmp_path / "prompts.jsonl"
    points.write_bytes(content)
    out = tmp_path / "out" / "o.mp4"
    out.parent.mkdir()
    code = main(["render", str(frames), str(masks), "-o", str(out), "--points", str(points)])
    message = one_error_line(capfd)
    assert code == 2 and str(points) in message and problem in message, message
    assert files_under(out.parent) == []


@pytest.fixture
def readonly_dir(tmp_path) -> Iterator[Path]:
    with readonly_folder(tmp_path / "readonly") as folder:
        yield folder


def test_render_output_checked_before_drawing(
    tmp_path, render_inputs, readonly_dir, capfd, no_drawing
):
    frames, masks = render_inputs
    a_folder = tmp_path / "a_folder.mp4"
    a_folder.mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = [
        (a_folder, f"{a_folder}: is a folder; give a file name"),
        (readonly_dir / "o.mp4", f"{readonly_dir}: not writable ("),
        (a_file / "o.mp4", f"{a_file}: {a_file} is a file, not a folder"),
    ]
    before = files_under(tmp_path)
    for out, problem in cases:
        code = main(["render", str(frames), str(masks), "-o", str(out)])
        message = one_error_line(capfd)
        assert code == 2 and problem in message, message
        assert message.endswith(("choose another path", "give a file name"))
        assert files_under(tmp_path) == before


def test_eval_csv_dir_checked_before_scoring(
    tmp_path, shared_data, readonly_dir, capfd, monkeypatch
):
    def score(*args, **kwargs):
        raise AssertionError("scored before the refusal")

    monkeypatch.setattr("samic_vos.eval.davis_eval.evaluate_davis", score)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = [
        (a_file, f"{a_file}: {a_file} is a file, not a folder; choose another path"),
        (readonly_dir / "csv", f"{readonly_dir / 'csv'}: not writable ("),
    ]
    results = shared_data / "results/STM_DAVIS16_val"
    davis = ["--davis-root", str(shared_data / "DAVIS"), "--year", "2016"]
    for csv_dir, problem in cases:
        code = main(["eval", "davis", str(results), *davis, "--csv-dir", str(csv_dir)])
        message = one_error_line(capfd)
        assert code == 2 and problem in message and message.endswith("choose another path")
    assert files_under(readonly_dir) == []


# --- SIGTERM and Ctrl-C -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "status", "said"),
    [
        (signal.SIGTERM, 143, "samic-vos: error: terminated"),
        (signal.SIGINT, 130, "samic-vos: error: interrupted"),
    ],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_signal_leaves_the_finished_frames_and_no_temporary_file(
    tmp_path, shared_data, tiny_models, signum, status, said
):
    frames = frame_folder(tmp_path, shared_data, 40)
    out, overlay = tmp_path / "out", tmp_path / "overlay.mp4"
    args = [*track_args(frames, shared_data, out, tiny_models), "--overlay", str(overlay)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "samic_vos", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 300
    while not (out / "masks" / "00003.png").exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no frame tracked in 300 s"
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status
    assert err.decode().splitlines()[-1] == said
    assert "Traceback" not in err.decode()
    names = assert_complete_frames(out)
    assert 4 <= len(names) < 40
    assert not overlay.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_reader_that_goes_away_ends_the_output_quietly(shared_data):
    """`samic-vos eval davis ... --json | head -c 100`: once the reader has closed the pipe,
    the command ends as Unix tools do (status 141, nothing on stderr), never a traceback."""
    command = [sys.executable, "-m", "samic_vos", "eval", "davis"]
    command += [str(shared_data / "results/STM_DAVIS16_val"), "--json", "-q"]
    command += ["--davis-root", str(shared_data / "DAVIS"), "--year", "2016", "--workers", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        proc.stdout.close()  # the reader is gone before the first byte
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGPIPE and stderr.decode() == ""


# --- misleading messages: each names what the user gave ----------------------------------------


def test_an_id_gap_across_mask_files_names_every_file(tmp_path, shared_data, tiny_models, capfd):
    """Object 1 in the first mask, object 3 in a later one: neither file has a gap of its own."""
    from samic_vos.data.mask_io import write_mask

    frames = frame_folder(tmp_path, shared_data, 3)
    first, later = tmp_path / "first.png", tmp_path / "later"
    later.mkdir()
    ids = np.zeros((480, 854), np.uint8)
    ids[100:200, 100:200] = 1
    write_mask(first, ids)
    write_mask(later / "00002.png", ids * 3)
    out = tmp_path / "out"
    args = track_args(frames, shared_data, out, tiny_models)
    args[args.index("--first-mask") + 1] = str(first)
    code = main([*args, "--masks", str(later)])
    message = one_error_line(capfd)
    assert code == 2 and not out.exists()
    assert message.startswith(
        f"samic-vos: error: {first} and {later}: the 2 masks together: object ids are 1, 3;"
    ), message


def test_a_config_sam_model_is_not_told_to_drop_a_flag(tmp_path, shared_data, tiny_models, capfd):
    config = tmp_path / "track.yaml"
    config.write_text("sam_model: vit_b\n")
    out = tmp_path / "out"
    args = track_args(frame_folder(tmp_path, shared_data, 2), shared_data, out, tiny_models)
    code = main([*args, "--config", str(config)])
    message = one_error_line(capfd)
    assert code == 2 and not out.exists()
    assert message.endswith("holds a SAM tiny model, not vit_b; pass --sam-model tiny"), message


def test_shard_zero_of_zero_says_what_n_is(tmp_path, shared_data, capfd):
    out = tmp_path / "out"
    davis = ["--davis-root", str(shared_data / "DAVIS"), "--year", "2016"]
    code = main(["bench", "davis", *davis, "--shard", "0/0", "-o", str(out)])
    message = one_error_line(capfd)
    assert code == 2 and not out.exists()
    assert message == (
        "samic-vos: error: shard '0/0': N is the number of shards, at least 1 (e.g. 0/4)"
    )


def test_offline_first_track_names_every_missing_weights_file(
    tmp_path, shared_data, capfd, monkeypatch
):
    """The README's first command offline, nothing cached: one line naming SAM's checkpoint
    and ResNet-50's, each with its URL and the flag that takes a local copy."""
    import socket

    from samic_vos.hub import weights

    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path / "home"))
    offline = {}
    for name in ("sam_vit_b", "resnet50_imagenet"):
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/{weights.REGISTRY[name].filename}"
        offline[name] = weights.WeightsEntry(**{**vars(weights.REGISTRY[name]), "url": url})
    monkeypatch.setattr(weights, "REGISTRY", {**weights.REGISTRY, **offline})
    out = tmp_path / "runs/bear"
    video = shared_data / "videos/davis_bear.mp4"
    first = shared_data / "videos/davis_bear_first_mask.png"
    code = main(["track", str(video), "--first-mask", str(first), "-o", str(out)])
    message = one_error_line(capfd)
    assert code == 2 and not (tmp_path / "runs").exists() and not (tmp_path / "home").exists()
    assert message.startswith("samic-vos: error: 2 weights files are missing: "), message
    for entry, flag in [
        (offline["sam_vit_b"], "--sam-checkpoint"),
        (offline["resnet50_imagenet"], "--backbone-weights"),
    ]:
        assert f"{entry.filename} is not in the cache" in message
        assert f"from {entry.url} (Connection refused); download it yourself and pass {flag}" in (
            message
        )


# --- flags the chosen path would ignore: refused, not dropped -----------------------------------


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            ["bench", "davis", "--train", "--prompter", "persam"],
            "--train is ignored: the persam prompter runs no SAMIC network",
        ),
        (
            ["bench", "davis", "--samic", "{samic}", "--prompter", "previous-mask"],
            "--samic is ignored: the previous-mask prompter runs no SAMIC network",
        ),
        (
            ["bench", "davis", "--prompter", "persam", "--random-backbone"],
            "--random-backbone is ignored: the persam prompter runs no SAMIC network",
        ),
        (
            [
                "segment",
                "--ref",
                "{tmp}/a.jpg",
                "--ref-mask",
                "{tmp}/a.png",
                "{tmp}/b.jpg",
                "--prompter",
                "persam",
                "--samic",
                "{samic}",
            ],
            "--samic is ignored: the persam prompter runs no SAMIC network",
        ),
        (
            [
                "track",
                "{video}",
                "--first-mask",
                "{first}",
                "--config",
                "{persam}",
                "--backbone-weights",
                "r.pth",
            ],
            "--backbone-weights is ignored: the persam prompter runs no SAMIC network",
        ),
        (
            [
                "track",
                "{video}",
                "--first-mask",
                "{first}",
                "--prompter",
                "persam",
                "--samic",
                "{samic}",
            ],
            "--samic is ignored: the persam prompter runs no SAMIC network",
        ),
        (
            ["bench", "fewshot", "--dataset", "perseg", "--root", "{tmp}", "--kshot", "vote"],
            "--kshot is ignored: it combines K supports and this run has 1 (--shots)",
        ),
        (
            ["train", "--sambox", "{tmp}", "--train-fraction", "0.5"],
            "--train-fraction is ignored: it picks the images of --fewshot pairs",
        ),
    ],
    ids=[
        "train-persam",
        "samic-previous-mask",
        "random-backbone-persam",
        "segment-samic-persam",
        "track-backbone-persam",
        "track-samic-persam-flag",
        "kshot-1-shot",
        "train-fraction-sambox",
    ],
)
def test_a_flag_the_chosen_path_ignores_is_refused(
    tmp_path, tiny_models, shared_data, capfd, command, said
):
    persam = tmp_path / "persam.yaml"
    persam.write_text("prompter: persam\n")
    for name in ("a.jpg", "a.png", "b.jpg"):  # inputs that pass the checks made before torch
        Image.new("L", (8, 8)).save(tmp_path / name)
    fill = {
        "samic": tiny_models["samic"],
        "persam": persam,
        "tmp": tmp_path,
        "video": shared_data / "videos/davis_bear.mp4",
        "first": shared_data / "videos/davis_bear_first_mask.png",
    }
    args = [part.format(**fill) for part in command]
    before = files_under(tmp_path)
    out = tmp_path / "out"
    code = main([*args, "-o", str(out)])
    message = one_error_line(capfd)
    fixes = {
        "--kshot": "drop it, or pass --shots K",
        "--train-fraction": "drop it, or train with --fewshot KIND --root ROOT",
    }
    fix = fixes.get(said.split()[0], "drop it, or use the samic prompter")
    assert code == 2 and message == f"samic-vos: error: {said}; {fix}"
    assert files_under(tmp_path) == before
