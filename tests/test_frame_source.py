from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import av
import numpy as np
import pytest
from damaged_files import corrupt_video, cut_video
from PIL import Image

from samic_vos.data.davis import read_image
from samic_vos.data.frame_source import DEFAULT_FOLDER_FPS, decord_available, open_frames
from samic_vos.runtime.errors import UserError

BEAR_FRAMES = 82
# decord has wheels for Linux x86_64 only: its tests are skipped elsewhere.
HAVE_DECORD = decord_available()
needs_decord = pytest.mark.skipif(not HAVE_DECORD, reason="decord is not installed")
VIDEO_BACKENDS = ["auto", "pyav", pytest.param("decord", marks=needs_decord)]
# The video backends installed here, for tests that loop over them.
INSTALLED_BACKENDS = ["pyav", "decord"] if HAVE_DECORD else ["pyav"]


def synthetic_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Smooth, distinct frames (they survive H.264 compression nearly unchanged)."""
    y, x = np.mgrid[0:height, 0:width]
    return [
        np.stack([x * 2 + 10 * i, y * 4, np.full_like(x, 30 + 20 * i)], -1).astype(np.uint8)
        for i in range(count)
    ]


def encode(path, frames: list[np.ndarray], rate: int = 24, rotation: int = 0) -> None:
    """Encode ``frames`` with PyAV directly (independent of the project's writer);
    ``rotation``: the display matrix's counter-clockwise degrees, as a phone writes it."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[:2] if frames else (48, 64)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "4"}
        if rotation:
            stream.set_display_rotation(rotation)
        if not frames:
            container.start_encoding()
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def video10(tmp_path_factory):
    frames = synthetic_frames(10)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    encode(path, frames, rate=25)
    return path, frames


@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_video_frames_names_and_metadata(video10, backend):
    path, originals = video10
    with open_frames(path, backend) as source:
        assert source.size == (48, 64)
        assert source.fps == 25.0
        assert source.num_frames == 10
        assert source.names == [f"{i:05d}" for i in range(10)]
        frames = list(source)
        assert [f.index for f in frames] == list(range(10))
        assert [f.name for f in frames] == source.names
        assert len(frames) == len(originals)
        for frame in frames:
            assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (48, 64, 3)
            errors = [np.abs(frame.rgb.astype(int) - other).mean() for other in originals]
            assert errors[frame.index] < 3 and int(np.argmin(errors)) == frame.index
        # A second iteration starts again at frame 0.
        again = next(iter(source))
        assert again.index == 0 and np.array_equal(again.rgb, frames[0].rgb)


@pytest.mark.parametrize("rotation", [-90, 180, 90])
def test_a_phone_videos_frames_are_upright_as_players_show_them(tmp_path, rotation):
    """A portrait phone video stores landscape pixels and a display matrix: the frames (and so
    the first mask and the masks written) are the ones a player shows, turned upright (what
    ffmpeg extracts); decord, which turns them itself into arrays of the wrong shape at some
    sizes, is not used for them."""
    originals = synthetic_frames(3)
    path = tmp_path / "phone.mp4"
    encode(path, originals, rotation=rotation)
    shown = [np.rot90(rgb, rotation // 90) for rgb in originals]  # both counter-clockwise
    for backend in ("auto", "pyav"):
        with open_frames(path, backend) as source:
            assert source.size == shown[0].shape[:2]
            frames = list(source)
        assert [f.rgb.shape for f in frames] == [s.shape for s in shown]
        for frame, expected in zip(frames, shown, strict=True):
            assert np.abs(frame.rgb.astype(int) - expected).mean() < 3
    if HAVE_DECORD:
        message = one_line_error(lambda: open_frames(path, "decord"))
        assert message.endswith("decord does not turn reliably; use `backend` pyav")


def test_a_clip_cut_without_re_encoding_has_the_frames_players_show(tmp_path, video10):
    """A clip cut at a frame that is not a keyframe (``ffmpeg -ss 0.12 -c copy``) keeps the
    packets from the keyframe before the cut, hidden by its edit list: its frames, their count
    and names are the 7 shown (what ffmpeg extracts), not the 10 stored; decord, which shows
    the hidden ones, is not used for it."""
    path, originals = video10
    cut = tmp_path / "cut.mp4"
    with av.open(str(path)) as source, av.open(str(cut), "w") as container:
        stream = source.streams.video[0]
        out = container.add_stream_from_template(stream)
        shift = round(3 / (25 * stream.time_base))  # three frames before the cut: pts < 0
        for packet in source.demux(stream):
            if packet.dts is not None:
                packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, out
                container.mux(packet)
    for backend in ("auto", "pyav"):
        with open_frames(cut, backend) as frames:
            assert frames.num_frames == 7 and frames.names == [f"{i:05d}" for i in range(7)]
            decoded = [frame.rgb for frame in frames]
        assert len(decoded) == 7
        for rgb, shown in zip(decoded, originals[3:], strict=True):
            assert np.abs(rgb.astype(int) - shown).mean() < 3
    if HAVE_DECORD:
        message = one_line_error(lambda: open_frames(cut, "decord"))
        assert message == (
            f"{cut}: players skip 3 frames of this video (before its first keyframe, or hidden "
            "by its edit list), which decord decodes; use `backend` pyav"
        )


def test_a_stream_recorded_from_mid_gop_has_the_frames_players_show(tmp_path):
    """A transport stream that starts between keyframes (a recording or a cut .ts) declares no
    frame count; its first packets cannot be decoded: its names are the 16 frames decoded
    (from the first keyframe), not its 21 packets, and decord, which shows frames in their
    place, is not used for it."""
    originals = synthetic_frames(24)
    full, cut = tmp_path / "full.ts", tmp_path / "cut.ts"
    with av.open(str(full), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        stream.codec_context.gop_size = 8
        stream.options = {"crf": "4"}
        for rgb in originals:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(full)) as source, av.open(str(cut), "w") as container:
        stream = source.streams.video[0]
        out = container.add_stream_from_template(stream)
        for k, packet in enumerate(p for p in source.demux(stream) if p.size):
            if k >= 3:  # the first keyframe and two packets after it are lost
                packet.stream = out
                container.mux(packet)
    for backend in ("auto", "pyav"):
        with open_frames(cut, backend) as frames:
            decoded = list(frames)
            assert frames.names == [frame.name for frame in decoded]
        assert len(decoded) == 16
        assert np.abs(decoded[0].rgb.astype(int) - originals[8]).mean() < 3
    if HAVE_DECORD:
        message = one_line_error(lambda: open_frames(cut, "decord"))
        assert message == (
            f"{cut}: players skip 5 frames of this video (before its first keyframe, or hidden "
            "by its edit list), which decord decodes; use `backend` pyav"
        )


def test_auto_uses_decord_when_importable_else_pyav(video10, monkeypatch):
    path, _ = video10
    expected = "DecordSource" if HAVE_DECORD else "PyAVSource"
    assert type(open_frames(path)).__name__ == expected
    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` now raises ImportError
    assert type(open_frames(path)).__name__ == "PyAVSource"
    with pytest.raises(UserError, match="decord is not installed.*`backend` pyav"):
        open_frames(path, "decord")


def test_folder_keeps_stems_in_natural_order(tmp_path):
    originals = synthetic_frames(3, 5, 7)
    for name, rgb in zip(["frame2", "frame10", "frame1"], originals, strict=True):
        Image.fromarray(rgb).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    Image.fromarray(originals[0]).convert("L").save(tmp_path / "frame3.jpg")
    with open_frames(tmp_path) as source:
        assert source.names == ["frame1", "frame2", "frame3", "frame10"]
        assert source.size == (5, 7) and source.num_frames == 4
        assert source.fps == DEFAULT_FOLDER_FPS == 24.0
        frames = list(source)
    assert [f.name for f in frames] == source.names
    assert np.array_equal(frames[0].rgb, originals[2])  # PNG: lossless
    assert np.array_equal(frames[3].rgb, originals[1])
    assert frames[2].rgb.shape == (5, 7, 3)  # grayscale JPEG converted to RGB
    assert open_frames(tmp_path, "folder", fps=10).fps == 10.0


def test_16_bit_grayscale_frames_keep_their_picture(tmp_path):
    """A 16-bit grayscale PNG (scientific, thermal, depth cameras) is its top 8 bits, in a
    frame folder and as a `segment` image alike, not clipped to white above 255."""
    gray = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7) * 7
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "00000.png")  # mode I;16
    with open_frames(folder) as source:
        (frame,) = list(source)
    expected = np.repeat(gray[..., None], 3, axis=2)
    assert np.array_equal(frame.rgb, expected)
    assert np.array_equal(read_image(folder / "00000.png"), expected)


def test_a_frame_over_pillows_pixel_limit_is_one_line_when_opened(tmp_path):
    """Pillow refuses to open a 200-megapixel image (a decompression bomb to it): one line
    naming the frame, before any frame is decoded, not a traceback."""
    Image.fromarray(synthetic_frames(1)[0]).save(tmp_path / "00000.png")
    Image.new("1", (20_000, 10_000)).save(tmp_path / "00001.png")  # 24 KB on disk
    message = one_line_error(lambda: open_frames(tmp_path))
    assert message.startswith(f"{tmp_path / '00001.png'}: cannot decode the image (")


def test_iteration_holds_no_frames(video10, tmp_path):
    """Frames are freed as soon as the caller drops them: the source keeps no references."""
    path, originals = video10
    for name, rgb in enumerate(originals):
        Image.fromarray(rgb).save(tmp_path / f"{name:05d}.png")
    for target, backend in [*((path, b) for b in INSTALLED_BACKENDS), (tmp_path, "folder")]:
        alive = []
        for frame in open_frames(target, backend):
            alive.append(weakref.ref(frame))
            del frame
            gc.collect()
            assert sum(ref() is not None for ref in alive) <= 1, backend


# Decodes the whole bear video in a fresh process (so what earlier tests left in the
# allocator cannot count) and prints the process's resident MB after each frame.
RSS_SCRIPT = """
import sys
from samic_vos.data.frame_source import open_frames
def rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20
with open_frames(sys.argv[1], sys.argv[2]) as source:
    print(" ".join(f"{rss_mb():.1f}" for _ in source))
"""


@pytest.mark.slow
def test_bear_decord_equals_pyav_equals_davis(shared_data):
    """Decoded frame k is DAVIS frame k with both backends."""
    video = shared_data / "videos/davis_bear.mp4"
    jpegs = sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))
    assert len(jpegs) == BEAR_FRAMES
    sources = [open_frames(video, backend) for backend in INSTALLED_BACKENDS]
    assert [s.num_frames for s in sources] == [BEAR_FRAMES] * len(sources)
    assert [s.size for s in sources] == [(480, 854)] * len(sources)
    count, previous = 0, None
    for *decoded, jpeg in zip(*sources, jpegs, strict=True):
        a = decoded[0]
        assert [f.name for f in decoded] == [jpeg.stem] * len(decoded)
        for b in decoded[1:]:  # decord against PyAV
            assert np.abs(a.rgb.astype(np.int16) - b.rgb).mean() < 0.5
        davis = np.asarray(Image.open(jpeg), dtype=np.int16)
        same = np.abs(a.rgb - davis).mean()
        assert same < 8, jpeg.name  # H.264 vs JPEG compression: a few grey levels
        if previous is not None:  # and clearly closer than the neighbouring DAVIS frame
            assert same < 0.7 * np.abs(a.rgb - previous).mean(), jpeg.name
        previous = davis
        count += 1
    for source in sources:
        source.close()
    assert count == BEAR_FRAMES


@pytest.mark.slow
@pytest.mark.parametrize("backend", INSTALLED_BACKENDS)
def test_bear_decoding_memory_is_flat(shared_data, backend):
    """Decoding the 82 bear frames holds no frames: resident memory stays flat after frame 10."""
    video = shared_data / "videos/davis_bear.mp4"
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(video), backend], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    rss = [float(v) for v in done.stdout.split()]
    assert len(rss) == BEAR_FRAMES
    # Holding every decoded frame would add ~1.2 MB per frame (~86 MB after frame 10).
    assert max(rss[10:]) - rss[10] < 20


def test_close_stops_iteration(video10):
    path, _ = video10
    for backend in INSTALLED_BACKENDS:
        source = open_frames(path, backend)
        iterator = iter(source)
        next(iterator)
        source.close()
        assert list(iterator) == []


def one_line_error(call) -> str:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_video_errors(tmp_path, backend):
    assert "not found" in one_line_error(lambda: open_frames(tmp_path / "nope.mp4", backend))
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n")
    assert "cannot decode the video" in one_line_error(lambda: open_frames(text, backend))
    empty = tmp_path / "empty.mp4"
    encode(empty, [])
    assert empty.stat().st_size > 0
    assert "0 frames" in one_line_error(lambda: open_frames(empty, backend))


def test_folder_and_backend_errors(tmp_path, video10):
    (tmp_path / "readme.txt").write_text("no frames here")
    assert "no images" in one_line_error(lambda: open_frames(tmp_path))
    assert "unknown backend 'opencv'" in one_line_error(lambda: open_frames(tmp_path, "opencv"))
    assert "reads video files only" in one_line_error(lambda: open_frames(tmp_path, "pyav"))
    assert "needs a folder" in one_line_error(lambda: open_frames(video10[0], "folder"))
    Image.new("RGB", (8, 6)).save(tmp_path / "00000.png")
    Image.new("RGB", (9, 6)).save(tmp_path / "00001.png")
    Image.new("RGB", (8, 6)).save(tmp_path / "00001.jpg")
    assert "two frames named '00001'" in one_line_error(lambda: open_frames(tmp_path))
    (tmp_path / "00001.jpg").unlink()
    # Sizes come from the headers: refused when the folder is opened, before any decoding.
    message = one_line_error(lambda: open_frames(tmp_path))
    assert "00001.png: image is 9x6 but the first frame (00000.png) is 8x6" in message
    (tmp_path / "00001.png").write_bytes(b"not an image")
    assert "00001.png: cannot decode the image" in one_line_error(lambda: open_frames(tmp_path))


def test_truncated_jpeg_in_a_folder_is_one_line_when_reached(tmp_path, shared_data):
    jpegs = sorted((shared_data / "DAVIS/JPEGImages/480p/bear").glob("*.jpg"))[:3]
    for jpeg in jpegs:
        (tmp_path / jpeg.name).write_bytes(jpeg.read_bytes())
    cut = tmp_path / jpegs[1].name
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # the header is intact
    source = open_frames(tmp_path)
    assert source.size == (480, 854)
    iterator = iter(source)
    assert next(iterator).name == jpegs[0].stem
    message = one_line_error(lambda: next(iterator))
    assert f"{cut}: cannot decode the image (image file is truncated" in message


@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_truncated_video_reports_both_counts(tmp_path, shared_data, backend):
    cut = cut_video(shared_data / "videos/davis_bear.mp4", tmp_path, 0.5)
    with open_frames(cut, backend) as source:
        assert source.num_frames == BEAR_FRAMES  # what the index declares, for every backend
        decoded = []
        with pytest.raises(UserError) as info:
            for frame in source:
                decoded.append(frame.name)
    message = str(info.value)
    assert "\n" not in message
    assert 20 < len(decoded) < 40, decoded  # about half of the bytes, about half of the frames
    assert decoded == [f"{i:05d}" for i in range(len(decoded))]
    assert f"ends after {len(decoded)} frames but declares {BEAR_FRAMES}" in message
    assert message.startswith(f"{cut}: ")


def test_cut_video_without_its_index_is_refused_when_opened(tmp_path, shared_data):
    data = (shared_data / "videos/davis_bear.mp4").read_bytes()  # the index (moov) is at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for backend in ("auto", *INSTALLED_BACKENDS):
        assert "cannot decode the video" in one_line_error(lambda b=backend: open_frames(cut, b))


@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_corrupt_video_is_one_error_and_no_library_text(tmp_path, shared_data, backend, capfd):
    bad = corrupt_video(shared_data / "videos/davis_bear.mp4", tmp_path)
    with open_frames(bad, backend) as source:
        assert source.num_frames == BEAR_FRAMES
        message = one_line_error(lambda: list(source))
    assert message.startswith(f"{bad}: frame ") and "cannot be decoded" in message
    assert capfd.readouterr().err == ""  # no FFmpeg or decord log lines on stderr's descriptor


@needs_decord
def test_opencv_still_reads_pngs_after_decord_is_loaded(tmp_path):
    """decord's global libraries (its own zlib) must not break OpenCV's PNG codec."""
    png = tmp_path / "frame.png"
    Image.fromarray(synthetic_frames(1)[0]).save(png)
    script = (
        "import sys\n"
        "from samic_vos.data.frame_source import decord_available\n"
        "assert decord_available()\n"
        "import cv2\n"
        "sys.exit(0 if cv2.imread(sys.argv[1]) is not None else 1)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(png)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
