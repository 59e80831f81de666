"""`samic-vos track` end to end on tiny random-weight SAM and SAMIC models, and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tiny_models import TINY_NET

from samic_vos.commands.cli import main
from samic_vos.data.mask_io import DAVIS_PALETTE, read_mask, write_mask
from samic_vos.model.checkpoint import load_samic
from samic_vos.sam.encoder import resolve_precision


def _track(args: list[str], models: dict[str, Path], samic: bool = True) -> int:
    extra = ["--sam-checkpoint", str(models["sam"])]
    if samic:
        extra += ["--samic", str(models["samic"])]
    return main(["track", *args, *extra])


def _h264_info(path: Path) -> tuple[str, str, int, tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, stream.pix_fmt, frames, (stream.height, stream.width)


def _prompt_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_track_video_end_to_end(tmp_path, shared_data, tiny_models):
    video = shared_data / "videos/davis_bear.mp4"
    first = shared_data / "videos/davis_bear_first_mask.png"
    out = tmp_path / "bear"
    overlay = tmp_path / "bear.mp4"
    args = [str(video), "--first-mask", str(first), "-o", str(out), "--overlay", str(overlay)]
    assert _track(args, tiny_models) == 0

    names = sorted(p.name for p in (out / "masks").iterdir())
    assert names == [f"{i:05d}.png" for i in range(82)]
    for name in names[::20]:
        with Image.open(out / "masks" / name) as image:
            assert image.mode == "P" and image.size == (854, 480)
            palette = np.array(image.getpalette(), np.uint8).reshape(-1, 3)
            assert np.array_equal(palette[:2], DAVIS_PALETTE[:2])
        assert set(np.unique(read_mask(out / "masks" / name)).tolist()) <= {0, 1}
    # Frame 0 is the given mask, exactly.
    assert np.array_equal(read_mask(out / "masks/00000.png"), read_mask(first))

    lines = _prompt_lines(out)
    assert [line["frame"] for line in lines] == [f"{i:05d}" for i in range(82)]
    first_points = np.array(lines[0]["objects"]["1"]["points"])
    assert len(first_points) >= 1
    first_mask = read_mask(first)
    assert all(first_mask[int(round(y)), int(round(x))] == 1 for x, y in first_points)
    for line in lines:
        obj = line["objects"]["1"]
        assert len(obj["points"]) == len(obj["scores"])
        assert 0.0 <= obj["confidence"] <= 1.0

    config = yaml.safe_load((out / "config.yaml").read_text())
    # config.yaml records what ran: the SAM architecture loaded, the device used, the
    # checkpoint's own network config.
    assert config["sam_model"] == "tiny" and config["samic"] == str(tiny_models["samic"])
    assert config["device"] == "cpu"
    auto = resolve_precision("auto", torch.device("cpu"))  # bf16 where the CPU computes it
    assert config["encoder"]["precision"] == {torch.float32: "fp32", torch.bfloat16: "bf16"}[auto]
    assert config["network"]["input_size"] == list(TINY_NET.input_size)
    assert _h264_info(overlay) == ("h264", "yuv420p", 82, (480, 854))

    # The masks are scorable by `samic-vos eval davis` (bear is a DAVIS-2016 train sequence).
    davis = ["--davis-root", str(shared_data / "DAVIS"), "--year", "2016", "--set", "train"]
    masks_root = tmp_path / "results"
    (masks_root).mkdir()
    (out / "masks").rename(masks_root / "bear")
    assert main(["eval", "davis", str(masks_root), *davis, "--sequences", "bear"]) == 0


@pytest.mark.slow
def test_track_frame_folder_multi_object(tmp_path, shared_data, tiny_models):
    frames = tmp_path / "frames"
    frames.mkdir()
    source = shared_data / "DAVIS/JPEGImages/480p/bmx-trees"
    for path in sorted(source.glob("*.jpg"))[:8]:
        shutil.copy(path, frames / path.name)
    first = shared_data / "multiobject/bmx-trees/00000.png"
    out = tmp_path / "out"
    assert _track([str(frames), "--first-mask", str(first), "-o", str(out)], tiny_models) == 0

    names = sorted(p.stem for p in (out / "masks").iterdir())
    assert names == sorted(p.stem for p in frames.iterdir())
    assert set(np.unique(read_mask(out / "masks/00000.png")).tolist()) == {0, 1, 2}
    for name in names:
        assert set(np.unique(read_mask(out / "masks" / f"{name}.png")).tolist()) <= {0, 1, 2}
    lines = _prompt_lines(out)
    assert len(lines) == 8
    assert all(set(line["objects"]) == {"1", "2"} for line in lines)


@pytest.mark.slow
def test_track_adapts_on_first_frame_without_checkpoint(tmp_path, shared_data, tiny_models):
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:3]:
        shutil.copy(path, frames / path.name)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "network": {"input_size": [64, 64], "channels": [8, 16, 32]},
                "adaptation": {"views": 3, "steps": 4, "batch_size": 2},
            }
        )
    )
    out = tmp_path / "out"
    first = shared_data / "videos/davis_bear_first_mask.png"
    args = [str(frames), "--first-mask", str(first), "-o", str(out), "--config", str(config)]
    assert _track([*args, "--random-backbone"], tiny_models, samic=False) == 0

    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["network"]["backbone"] == "random"
    assert resolved["samic"].startswith("adapted on frame 0")
    adapted = out / "samic_adapted.pt"
    net, meta = load_samic(adapted)
    assert net.config.input_size == (64, 64) and net.config.backbone == "random"
    assert set(meta["metrics"]) >= {"kld", "cc", "nss"}
    assert len(list((out / "masks").iterdir())) == 3
    # The saved network is reusable with --samic and gives the same masks.
    again = tmp_path / "again"
    reuse = [str(frames), "--first-mask", str(first), "-o", str(again), "--samic", str(adapted)]
    assert main(["track", *reuse, "--sam-checkpoint", str(tiny_models["sam"])]) == 0
    for name in ("00001.png", "00002.png"):
        assert np.array_equal(read_mask(out / "masks" / name), read_mask(again / "masks" / name))


def _assert_user_error(capsys, code: int, *fragments: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) >= 1
    message = err[-1]
    assert message.startswith("samic-vos: error: ")
    assert "Traceback" not in "\n".join(err)
    for fragment in fragments:
        assert fragment in message


@pytest.fixture
def small_video(tmp_path, shared_data) -> tuple[Path, Path]:
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:2]:
        shutil.copy(path, frames / path.name)
    return frames, shared_data / "videos/davis_bear_first_mask.png"


def _bad_mask(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.png"
    if kind == "empty":
        write_mask(path, np.zeros((480, 854), np.uint8))
    elif kind == "rgb":
        Image.new("RGB", (854, 480), (128, 0, 0)).save(path)
    elif kind == "ids_without_palette":
        ids = np.zeros((480, 854), np.uint8)
        ids[100:200, 100:200], ids[300:400, 300:400] = 1, 2
        Image.fromarray(ids, mode="L").save(path)
    return path


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("empty", "no object"),
        ("rgb", "colour"),
        ("ids_without_palette", "grayscale mask"),
        ("wrong_size", "853x480"),
    ],
)
def test_bad_first_mask(tmp_path, capsys, shared_data, small_video, tiny_models, kind, fragment):
    frames, _ = small_video
    if kind == "wrong_size":
        mask = shared_data / "judo/Annotations/480p/judo/00005.png"
    else:
        mask = _bad_mask(tmp_path, kind)
    out = tmp_path / "out"
    code = _track([str(frames), "--first-mask", str(mask), "-o", str(out)], tiny_models)
    _assert_user_error(capsys, code, fragment)
    assert not out.exists()


def test_a_phone_video_is_tracked_upright_as_players_show_it(tmp_path, capsys, tiny_models):
    """A portrait phone video stores landscape pixels and a display matrix: the first mask is
    of the frame as shown (upright) and so are the masks written; a mask of the stored
    orientation is refused in one line that says so."""
    video = tmp_path / "phone.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        stream.set_display_rotation(-90)  # shown turned clockwise: 48 wide, 64 high
        for value in (40, 80):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), value, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    shown = np.zeros((64, 48), np.uint8)
    shown[40:60, 5:20] = 1
    write_mask(tmp_path / "shown.png", shown)
    write_mask(tmp_path / "stored.png", np.ascontiguousarray(np.rot90(shown)))
    out = tmp_path / "out"
    code = _track(
        [str(video), "--first-mask", str(tmp_path / "stored.png"), "-o", str(out)], tiny_models
    )
    _assert_user_error(capsys, code, "mask is 64x48 but the video frames are 48x64", "upright")
    assert not out.exists()

    args = [str(video), "--first-mask", str(tmp_path / "shown.png"), "-o", str(out)]
    assert _track(args, tiny_models) == 0
    masks = sorted((out / "masks").iterdir())
    assert [read_mask(p).shape for p in masks] == [(64, 48), (64, 48)]
    assert np.array_equal(read_mask(masks[0]), shown)


def test_a_masks_folder_as_other_systems_fill_it(tmp_path, capsys, tiny_models):
    """Masks named ``.PNG`` (Windows tools) are read, macOS's hidden ``._`` files beside them
    are not masks, and a JPEG mask is refused in one line rather than ignored."""
    frames, masks = tmp_path / "frames", tmp_path / "masks"
    frames.mkdir()
    masks.mkdir()
    for i in range(3):
        Image.fromarray(np.full((48, 64, 3), 60 * i, np.uint8)).save(frames / f"{i:05d}.png")
    first = np.zeros((48, 64), np.uint8)
    first[5:20, 5:20] = 1
    later = first.copy()
    later[30:45, 40:60] = 2
    write_mask(tmp_path / "first.png", first)
    write_mask(masks / "00002.PNG", later)
    (masks / "._00002.PNG").write_bytes(b"\0\5\26\7 AppleDouble")
    args = [str(frames), "--first-mask", str(tmp_path / "first.png"), "--masks", str(masks)]
    assert _track([*args, "-o", str(tmp_path / "out")], tiny_models) == 0
    assert np.array_equal(read_mask(tmp_path / "out/masks/00002.png") == 2, later == 2)

    Image.fromarray(later * 100).save(masks / "00001.jpg")
    code = _track([*args, "-o", str(tmp_path / "again")], tiny_models)
    _assert_user_error(capsys, code, "00001.jpg: grayscale mask with")
    assert not (tmp_path / "again").exists()


def test_bad_video_and_output(tmp_path, capsys, small_video, tiny_models):
    frames, first = small_video
    cases = {
        "missing": tmp_path / "nope.mp4",
        "undecodable": tmp_path / "text.mp4",
        "no frames": tmp_path / "empty_folder",
    }
    cases["undecodable"].write_text("not a video")
    cases["no frames"].mkdir()
    for video in cases.values():
        out = tmp_path / "out"
        code = _track([str(video), "--first-mask", str(first), "-o", str(out)], tiny_models)
        _assert_user_error(capsys, code, str(video))
        assert not out.exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = _track(
        [str(frames), "--first-mask", str(first), "-o", str(blocker / "out")], tiny_models
    )
    _assert_user_error(capsys, code, "a_file is a file, not a folder")
    code = _track([str(frames), "--first-mask", str(first), "-o", str(blocker)], tiny_models)
    _assert_user_error(capsys, code, "a_file is a file, not a folder")
    assert blocker.read_text() == ""


def test_overlay_place_checked_before_any_output(tmp_path, capsys, small_video, tiny_models):
    """An overlay in a folder that does not exist is refused before config.yaml, run.json or
    masks/ are written, so the corrected rerun is not refused as another run."""
    frames, first = small_video
    out = tmp_path / "out"
    for overlay, fragment in (("nodir/ov.mp4", "output folder does not exist"), ("o.avi", "mp4")):
        args = [str(frames), "--first-mask", str(first), "-o", str(out)]
        code = _track([*args, "--overlay", str(tmp_path / overlay)], tiny_models)
        _assert_user_error(capsys, code, fragment)
        assert not out.exists()
    code = _track([*args, "--overlay", str(tmp_path / "ov.mp4")], tiny_models)
    assert code == 0 and (tmp_path / "ov.mp4").is_file()


def test_finished_run_names_the_force_flag(tmp_path, capsys, small_video, tiny_models):
    """A finished run says so, naming the flag that redoes it (--force, not the API's `force`)."""
    frames, first = small_video
    args = [str(frames), "--first-mask", str(first), "-o", str(tmp_path / "out")]
    assert _track(args, tiny_models) == 0
    capsys.readouterr()
    assert _track(args, tiny_models) == 0
    err = capsys.readouterr().err
    assert "this run is finished (2 frames); pass --force to redo it" in err
    assert "`" not in err


@pytest.mark.parametrize("prompter", ["previous-mask", "persam"])
def test_prompter_flag_picks_a_training_free_prompter(tmp_path, small_video, tiny_models, prompter):
    """--prompter is the YAML's `prompter`, as in bench davis: no SAMIC network runs."""
    frames, first = small_video
    out = tmp_path / "out"
    args = [str(frames), "--first-mask", str(first), "-o", str(out), "--prompter", prompter]
    assert _track(args, tiny_models, samic=False) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["prompter"] == prompter
    assert len(list((out / "masks").iterdir())) == 2 and not (out / "samic_adapted.pt").exists()


def test_a_rerun_removes_what_killed_writes_left(tmp_path, small_video, tiny_models):
    """A process killed mid-write leaves its temporary file (a SIGKILL gives atomic_path no
    chance to remove it): the rerun removes those of its own files, and a folder holding only
    a cut first manifest is an empty one, not a foreign folder."""
    frames, first = small_video
    out, overlay = tmp_path / "runs/bear", tmp_path / "runs/bear.mp4"
    out.mkdir(parents=True)
    (out / ".run.k1ll3d_x.part.json").write_text('{"format": "samic-vos/r')
    neighbour = tmp_path / "runs/.other.abcdefgh.part.mp4"  # another file's: kept
    neighbour.write_bytes(b"another job's")
    args = [str(frames), "--first-mask", str(first), "-o", str(out), "--overlay", str(overlay)]
    assert _track(args, tiny_models) == 0
    straight = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert not any(p.name.startswith(".") for p in straight)
    # killed while writing frame 1's mask and the overlay: the rerun (resume) sweeps them
    lines = (out / "prompts.jsonl").read_text().splitlines(keepends=True)
    (out / "prompts.jsonl").write_text(lines[0])
    (out / "masks/00001.png").unlink()
    manifest = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**manifest, "finished": False}))
    (out / "masks/.00001.abcdefgh.part.png").write_bytes(b"\x89PNG cut")
    (tmp_path / "runs/.bear.abcdefgh.part.mp4").write_bytes(b"cut video")
    assert _track(args, tiny_models) == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == straight
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        ".other.abcdefgh.part.mp4",
        "bear",
        "bear.mp4",
    ]


def test_overlay_in_the_output_folder_it_makes(tmp_path, capsys, small_video, tiny_models):
    """The README's first command: `-o runs/bear --overlay runs/bear/overlay.mp4` on a machine
    where runs/ does not exist yet; the overlay may also go beside OUT (`track --help`)."""
    frames, first = small_video
    for out, overlay in (
        (tmp_path / "runs/bear", tmp_path / "runs/bear/overlay.mp4"),
        (tmp_path / "runs2/video", tmp_path / "runs2/video.mp4"),
    ):
        args = [str(frames), "--first-mask", str(first), "-o", str(out), "--overlay", str(overlay)]
        assert _track(args, tiny_models) == 0, capsys.readouterr().err
        assert _h264_info(overlay)[2] == 2
        assert len(list((out / "masks").iterdir())) == 2
    # A folder that is neither OUT nor above it is still refused before anything is written.
    out = tmp_path / "runs3/bear"
    args = [str(frames), "--first-mask", str(first), "-o", str(out)]
    code = _track([*args, "--overlay", str(tmp_path / "elsewhere/ov.mp4")], tiny_models)
    _assert_user_error(capsys, code, "output folder does not exist")
    assert not (tmp_path / "runs3").exists()


def test_missing_sam_weights_offline(tmp_path, capsys, monkeypatch, small_video):
    from samic_vos.hub import weights

    monkeypatch.setenv("SAMIC_VOS_HOME", str(tmp_path / "home"))
    entry = weights.REGISTRY["sam_vit_b"]
    offline = type(entry)(**{**entry.__dict__, "url": "http://127.0.0.1:9/sam_vit_b_01ec64.pth"})
    monkeypatch.setitem(weights.REGISTRY, "sam_vit_b", offline)
    frames, first = small_video
    out = tmp_path / "out"
    code = main(["track", str(frames), "--first-mask", str(first), "-o", str(out)])
    _assert_user_error(capsys, code, "sam_vit_b_01ec64.pth", "--sam-checkpoint")
    assert not out.exists()


def test_interrupt_leaves_only_complete_frames(tmp_path, monkeypatch, shared_data, tiny_models):
    from samic_vos.inference.tracker import CausalTracker

    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:6]:
        shutil.copy(path, frames / path.name)
    real_step = CausalTracker.step

    def step(self, rgb, mask=None, embedding=None):
        if self.frame_index == 2:
            raise KeyboardInterrupt
        return real_step(self, rgb, mask, embedding)

    monkeypatch.setattr(CausalTracker, "step", step)
    out = tmp_path / "out"
    first = shared_data / "videos/davis_bear_first_mask.png"
    overlay = tmp_path / "overlay.mp4"
    args = [str(frames), "--first-mask", str(first), "-o", str(out), "--overlay", str(overlay)]
    assert _track(args, tiny_models) == 130
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    for path in (out / "masks").iterdir():
        assert read_mask(path).shape == (480, 854)
    assert len(_prompt_lines(out)) == 3
    assert not overlay.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".overlay")]


def test_shipped_track_configs_load():
    from samic_vos.jobs.track import TrackConfig
    from samic_vos.runtime.config import load_config

    repo = Path(__file__).resolve().parents[1]
    config = load_config(TrackConfig(), repo / "configs/track_vit_h.yaml")
    assert (config.sam_model, config.network.input_size) == ("vit_h", (400, 400))


@pytest.mark.parametrize(
    "launcher",
    [
        {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"},
        {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"},
    ],
)
def test_one_video_under_a_launcher_is_tracked_by_shard_0_alone(
    tmp_path, capsys, monkeypatch, small_video, tiny_models, launcher
):
    """torchrun or a Slurm array around one video: shard 0 tracks it, the others write
    nothing (two processes appending to one prompts.jsonl would be a race)."""
    frames, first = small_video
    out = tmp_path / "out"
    args = [str(frames), "--first-mask", str(first), "-o", str(out)]
    with monkeypatch.context() as patch:
        for name, value in launcher.items():
            patch.setenv(name, value)
        assert _track(args, tiny_models) == 0
    assert not out.exists()
    assert "shard 1 of 2 has nothing to do (shard 0 tracks it)" in capsys.readouterr().err
    for name, value in {**launcher, "RANK": "0", "SLURM_ARRAY_TASK_ID": "0"}.items():
        monkeypatch.setenv(name, value)
    assert _track(args, tiny_models) == 0
    assert len(list((out / "masks").iterdir())) == 2
