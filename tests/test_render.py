from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image

from samic_vos.commands.cli import main
from samic_vos.data.frame_source import open_frames
from samic_vos.data.mask_io import DAVIS_PALETTE, write_mask
from samic_vos.data.video_writer import VideoWriter
from samic_vos.reports.render import overlay, read_prompt_points, render_video
from samic_vos.runtime.errors import UserError

RED, GREEN = DAVIS_PALETTE[1].astype(int), DAVIS_PALETTE[2].astype(int)


def probe(path) -> dict:
    """Codec, pixel format, size and decoded frames of a written video (read with PyAV)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "size": (stream.height, stream.width),
            "rate": float(stream.average_rate),
            "frames": frames,
        }


def top_level_atoms(path) -> list[str]:
    atoms, data, offset = [], path.read_bytes(), 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        atoms.append(data[offset + 4 : offset + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        offset += size
    return atoms


def frame_folder(root, count=3, size=(47, 65)):
    """A folder of ``count`` PNG frames and a folder of masks (object 1 in a box, void border)."""
    frames, masks = root / "frames", root / "masks"
    frames.mkdir()
    masks.mkdir()
    height, width = size
    for i in range(count):
        rgb = np.full((height, width, 3), (90, 140 + 10 * i, 200), np.uint8)
        Image.fromarray(rgb).save(frames / f"{i:05d}.png")
        ids = np.zeros(size, np.uint8)
        ids[10:30, 10 + 5 * i : 40 + 5 * i] = 1
        ids[0, :] = 255
        write_mask(masks / f"{i:05d}.png", ids)
    return frames, masks


def test_overlay_blend_outline_and_void():
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 7
    ids = np.zeros((40, 50), np.uint8)
    ids[5:25, 5:25] = 1
    ids[5:25, 25:45] = 2  # touches object 1
    ids[30:, :] = 255
    ids[0:10, 40:50] = 1  # reaches the image edge
    out = overlay(rgb, ids, alpha=0.3, outline=2)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    expected = np.rint(0.7 * np.array([200, 100, 7]) + 0.3 * RED)
    assert out[15, 15].tolist() == expected.tolist()  # interior: the blend formula
    assert out[15, 35].tolist() == np.rint(0.7 * np.array([200, 100, 7]) + 0.3 * GREEN).tolist()
    assert out[15, 5].tolist() == RED.tolist()  # outline: the palette colour, opaque
    assert out[15, 6].tolist() == RED.tolist() and out[15, 7].tolist() != RED.tolist()
    assert out[15, 24].tolist() == RED.tolist()  # both sides of the 1|2 border
    assert out[15, 25].tolist() == GREEN.tolist()
    assert out[2, 49].tolist() == expected.tolist()  # the image edge is not a border
    background = (ids == 0) | (ids == 255)
    assert np.array_equal(out[background], rgb[background])  # background and void untouched
    plain = overlay(rgb, ids, alpha=0.3, outline=0)
    assert plain[15, 5].tolist() == expected.tolist()


def test_overlay_points_are_discs_with_a_contrasting_rim():
    rgb = np.zeros((30, 30, 3), np.uint8)
    ids = np.zeros((30, 30), np.uint8)
    out = overlay(rgb, ids, points={1: np.array([[10.2, 20.0]])}, point_radius=3)
    assert out[20, 10].tolist() == RED.tolist()  # (x, y) = (10, 20): column 10, row 20
    assert out[20, 13].tolist() == RED.tolist()
    assert out[20, 14].tolist() == [255, 255, 255]  # dark colour → white rim
    assert out[20, 16].tolist() == [0, 0, 0]
    assert out[10, 20].tolist() == [0, 0, 0]  # not transposed
    grey = np.full((30, 30, 3), 100, np.uint8)
    bright = overlay(grey, ids, points={127: np.array([[5, 5]])}, point_radius=2)  # (224,192,192)
    assert bright[5, 5].tolist() == [224, 192, 192]
    assert bright[5, 8].tolist() == [0, 0, 0] and bright[5, 9].tolist() == [100, 100, 100]


def test_read_prompt_points(tmp_path):
    path = tmp_path / "prompts.jsonl"
    lines = [
        {"frame": "00000", "objects": {"1": {"points": [[1, 2], [3.5, 4]], "scores": [0.9, 0.8],
                                             "confidence": 0.93}}},
        {"frame": "00001", "objects": {"1": {"points": [], "scores": [], "confidence": 0.0},
                                       "2": {"points": [[7, 8]], "scores": [1.0],
                                             "confidence": 1.02}}},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    points = read_prompt_points(path)
    assert sorted(points) == ["00000", "00001"]
    assert points["00000"][1].tolist() == [[1, 2], [3.5, 4]]
    assert points["00001"][1].shape == (0, 2) and points["00001"][2].tolist() == [[7, 8]]
    for bad, message in [
        ("{not json", "prompts.jsonl:1: not valid JSON"),
        ('{"frame": 0, "objects": {}}', "prompts.jsonl:1: expected"),
        ('{"frame": "0", "objects": {"x": {"points": []}}}', "object id 'x'"),
        ('{"frame": "0", "objects": {"1": {"points": [[1, 2, 3]]}}}', "list of \\[x, y\\] pairs"),
        ('{"frame": "0", "objects": {"1": {"scores": []}}}', "list of \\[x, y\\] pairs"),
    ]:
        path.write_text(bad + "\n")
        with pytest.raises(UserError, match=message):
            read_prompt_points(path)


def test_writer_pads_odd_sizes_and_is_h264_faststart(tmp_path):
    out = tmp_path / "odd.mp4"
    frames = [np.full((47, 65, 3), 40 * i, np.uint8) for i in range(4)]
    with VideoWriter(out, 12.5, (47, 65)) as writer:
        for rgb in frames:
            writer.write(rgb)
    info = probe(out)
    assert (info["codec"], info["pix_fmt"], info["size"]) == ("h264", "yuv420p", (48, 66))
    assert info["rate"] == 12.5 and len(info["frames"]) == 4
    for decoded, rgb in zip(info["frames"], frames, strict=True):
        assert np.abs(decoded.astype(int) - rgb[0, 0]).max() <= 2  # padding repeats the edge
    assert top_level_atoms(out).index("moov") < top_level_atoms(out).index("mdat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_writer_encodes_in_the_callers_thread_by_default(tmp_path):
    """The overlay encoder starts no thread of its own (libx264's automatic count does)."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(4)]
    started = {}
    for threads in (None, 0):
        before = _os_threads()
        kwargs = {} if threads is None else {"threads": threads}
        with VideoWriter(tmp_path / f"{threads}.mp4", 24, (96, 128), **kwargs) as writer:
            for rgb in frames:
                writer.write(rgb)
            started[threads] = _os_threads() - before
    assert started[None] == 0
    assert started[0] >= 1


def test_writer_leaves_nothing_after_an_error(tmp_path):
    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(out, 24, (16, 16)) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        raise RuntimeError("boom")
    with pytest.raises(ValueError, match="no frames"), VideoWriter(out, 24, (16, 16)):
        pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match="end in .mp4|ending in .mp4"):
        VideoWriter(tmp_path / "out.avi", 24, (16, 16))
    with pytest.raises(UserError, match="output folder does not exist"):
        VideoWriter(tmp_path / "no" / "out.mp4", 24, (16, 16)).__enter__()


def test_render_folder_with_points(tmp_path):
    frames_dir, masks = frame_folder(tmp_path)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"frame": "00001", "objects": {"1": {"points": [[30, 20]]}}}))
    out = tmp_path / "overlay.mp4"
    with open_frames(frames_dir) as frames:
        count = render_video(frames, masks, out, alpha=0.5, points_jsonl=prompts, progress=False)
    info = probe(out)
    assert count == 3 and len(info["frames"]) == 3
    assert (info["codec"], info["pix_fmt"], info["size"]) == ("h264", "yuv420p", (48, 66))
    assert info["rate"] == 24.0
    first = info["frames"][0].astype(int)
    blend = np.rint(0.5 * np.array([90, 140, 200]) + 0.5 * RED)
    assert np.abs(first[20, 25] - blend).max() <= 6  # object interior (after H.264)
    assert np.abs(first[40, 5] - [90, 140, 200]).max() <= 6  # background
    assert np.abs(info["frames"][1][20, 30].astype(int) - RED).max() <= 20  # the point's disc
    assert np.abs(info["frames"][2][20, 30].astype(int) - RED).max() > 20  # no point there


@pytest.mark.slow
def test_render_bear_video_with_davis_masks(shared_data, tmp_path):
    out = tmp_path / "bear.mp4"
    video = shared_data / "videos/davis_bear.mp4"
    masks = shared_data / "DAVIS/Annotations/480p/bear"
    assert main(["render", str(video), str(masks), "-o", str(out), "--quiet"]) == 0
    info = probe(out)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert info["size"] == (480, 854) and len(info["frames"]) == 82 and info["rate"] == 30.0
    assert top_level_atoms(out).index("moov") < top_level_atoms(out).index("mdat")
    # The bear (id 1) is tinted red where DAVIS says it is, and only there.
    ids = np.asarray(Image.open(masks / "00040.png"))
    frame = info["frames"][40].astype(int)
    inside, outside = frame[ids == 1], frame[ids == 0]
    assert (inside[:, 0] - inside[:, 1]).mean() > 40
    assert abs((outside[:, 0] - outside[:, 1]).mean()) < 15


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    status = main(["render", *map(str, args), "--quiet"])
    return status, capsys.readouterr().err.strip().splitlines()


def test_cli_errors_are_one_line_and_leave_no_output(tmp_path, capsys):
    frames_dir, masks = frame_folder(tmp_path)
    out = tmp_path / "out" / "overlay.mp4"
    out.parent.mkdir()
    cases = [
        ((tmp_path / "missing.mp4", masks), "missing.mp4: video or frame folder not found"),
        ((frames_dir, tmp_path / "nomasks"), "nomasks: mask folder not found"),
    ]
    write_mask(masks / "00002.png", np.zeros((47, 64), np.uint8))
    cases.append(((frames_dir, masks), "00002.png: mask is 64x47 but frame '00002' is 65x47"))
    for (video, masks_dir), message in cases:
        status, err = run_cli(capsys, video, masks_dir, "-o", out)
        assert status == 2 and len(err) == 1 and message in err[0], err
        assert list(out.parent.iterdir()) == []  # no out.mp4, no temporary file


def test_a_mask_of_the_wrong_size_is_refused_before_any_frame(tmp_path, capsys, monkeypatch):
    """Mask sizes are inputs: checked (from the PNG headers) before the first frame is drawn,
    as missing masks are, not found by the progress bar's last frame."""
    from samic_vos.reports import render

    frames_dir, masks = frame_folder(tmp_path)
    write_mask(masks / "00002.png", np.zeros((47, 64), np.uint8))
    drawn = []
    monkeypatch.setattr(render, "overlay", lambda *args: drawn.append(args) or args[0])
    out = tmp_path / "overlay.mp4"
    status = main(["render", str(frames_dir), str(masks), "-o", str(out)])  # not quiet
    assert status == 2 and drawn == [] and not out.exists()
    assert capsys.readouterr().err.splitlines() == [
        f"samic-vos: error: {masks / '00002.png'}: mask is 64x47 but frame '00002' is 65x47; "
        "masks must have the frames' size"
    ]


def test_render_needs_a_mask_per_frame(tmp_path):
    frames_dir, masks = frame_folder(tmp_path)
    (masks / "00001.png").unlink()
    with pytest.raises(UserError, match=r"00001.png: mask not found \(1 of 3 frames"):
        render_video(open_frames(frames_dir), masks, tmp_path / "o.mp4", progress=False)
    write_mask(masks / "00001.png", np.zeros((47, 65), np.uint8))
    write_mask(masks / "00007.png", np.zeros((47, 65), np.uint8))
    with pytest.raises(UserError, match="00007.png: no frame named '00007'"):
        render_video(open_frames(frames_dir), masks, tmp_path / "o.mp4", progress=False)
    (masks / "00007.png").unlink()
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"frame": "00099", "objects": {}}))
    with pytest.raises(UserError, match="frame '00099' is not a frame of"):
        render_video(
            open_frames(frames_dir), masks, tmp_path / "o.mp4", points_jsonl=prompts, progress=False
        )
    with pytest.raises(UserError, match=r"alpha must be in \[0, 1\]"):
        render_video(open_frames(frames_dir), masks, tmp_path / "o.mp4", alpha=1.5)
    assert not (tmp_path / "o.mp4").exists()


def test_render_gives_the_same_bytes_whatever_the_heap_held(tmp_path, shared_data):
    """Two straight runs of `render` in fresh processes write the same bytes. libx264's
    macroblock tree read memory it never wrote, so the bytes followed whatever the process had
    freed before; MALLOC_PERTURB_ fills that memory with another byte in each run."""
    frames, masks = tmp_path / "frames", tmp_path / "masks"
    frames.mkdir()
    masks.mkdir()
    for jpeg in sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:12]:
        (frames / jpeg.name).write_bytes(jpeg.read_bytes())
        png = shared_data / "DAVIS/Annotations/480p/bear" / f"{jpeg.stem}.png"
        (masks / png.name).write_bytes(png.read_bytes())
    videos = []
    for fill in (37, 211):
        out = tmp_path / f"overlay_{fill}.mp4"
        env = {**os.environ, "MALLOC_PERTURB_": str(fill), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "samic_vos", "render", str(frames), str(masks)]
        subprocess.run([*command, "-o", str(out), "-q"], env=env, check=True)
        videos.append(out.read_bytes())
    assert videos[0] == videos[1]
