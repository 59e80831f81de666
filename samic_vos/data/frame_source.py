"""Streaming frame sources: one interface over decord, PyAV and folders of images.

``open_frames(path)`` returns a :class:`FrameSource`; iterating it yields :class:`Frame` objects
one at a time (RGB ``uint8`` arrays of shape ``(H, W, 3)``, row-major). A source never holds
more than O(1) decoded frames, whatever the length of the video: videos are decoded
sequentially (decord's ``next()``, PyAV's packet decoder), folders read one image per step.

Frame names (the stems of the mask PNGs written for them):
- folders keep their file stems (``00000.jpg`` → ``"00000"``), in natural order
  (``frame2`` before ``frame10``);
- videos use zero-padded indices ``"00000"``, ``"00001"``, ... (DAVIS style, so masks can be
  scored with ``samic-vos eval davis``; beyond 99999 frames the names simply get longer) of
  the frames players show: frames an edit list hides (a clip cut without re-encoding) and
  frames before the first keyframe (a stream recorded from its middle) are neither decoded
  nor counted, and such a video is decoded by PyAV (decord shows them).

Every video is probed with PyAV first (PyAV is a hard dependency): the frame rate, the declared
frame count and the size come from it whatever the decoding backend, so both backends report
the same :attr:`FrameSource.num_frames`, and a missing, undecodable or empty video is reported
the same way. Frames are upright as players show them: a video whose display matrix turns it
(a phone's portrait video stores landscape pixels) is turned, so its size, its frames, the
first mask expected and the masks written are all in the orientation the user sees (what
``ffmpeg -i video.mp4 %05d.png`` extracts); such a video is decoded by PyAV (decord turns it
itself, into arrays of the wrong shape at some sizes). A video that ends before its declared
frame count (a truncated file) raises :class:`UserError` naming both counts when the iteration
reaches its end; a folder's image sizes are read from the image headers when it is opened, so
a frame of another size is refused before the first frame is decoded.

Third-party log text never reaches the user: PyAV leaves FFmpeg's logging off unless asked
(``av.logging``), and decord's bundled FFmpeg is set to quiet when decord is first imported.
Both libraries' messages become one-line :class:`UserError` s. (stderr's file descriptor is not
redirected: that would also swallow this process's own messages and progress bars.)
"""

from __future__ import annotations

import abc
import itertools
import os
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from samic_vos.data.names import BACKENDS, DEFAULT_FOLDER_FPS, VIDEO_INPUT
from samic_vos.runtime.errors import UserError, size_text
from samic_vos.runtime.input_paths import require_input

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``rgb`` is ``uint8``, shape ``(H, W, 3)``, RGB channel order."""

    index: int
    name: str
    rgb: np.ndarray


class FrameSource(abc.ABC):
    """Frames of one video or image folder, decoded one at a time.

    Iterable (each iteration starts again at frame 0) and a context manager; :meth:`close`
    ends any iteration in progress and releases the decoder.
    """

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        self.path = path
        self._size = size
        self._fps = fps
        self._iterators: weakref.WeakSet = weakref.WeakSet()

    @property
    def size(self) -> tuple[int, int]:
        """Frame size ``(H, W)`` in pixels."""
        return self._size

    @property
    def fps(self) -> float:
        """Frames per second (folders: :data:`DEFAULT_FOLDER_FPS` unless overridden)."""
        return self._fps

    @property
    @abc.abstractmethod
    def num_frames(self) -> int | None:
        """The number of frames the container declares (for progress bars); None if unknown."""

    @property
    @abc.abstractmethod
    def names(self) -> list[str]:
        """The frame names in order (stems of the mask PNGs that belong to the frames)."""

    @abc.abstractmethod
    def _decode(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, rgb)`` for each frame in order, decoding one frame per step."""

    def __iter__(self) -> Iterator[Frame]:
        iterator = self._frames()
        self._iterators.add(iterator)
        return iterator

    def _frames(self) -> Iterator[Frame]:
        count = 0
        for index, (name, rgb) in enumerate(self._decode()):
            yield Frame(index, name, rgb)
            count = index + 1
        declared = self.num_frames
        if declared is not None and count < declared:
            raise _truncated_error(self.path, count, declared)

    def close(self) -> None:
        """Stop every iteration in progress (their decoders are closed)."""
        for iterator in list(self._iterators):
            iterator.close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        height, width = self.size
        return f"{type(self).__name__}({str(self.path)!r}, {width}x{height}, fps={self.fps:g})"


def video_frame_name(index: int) -> str:
    """The name of a video's frame ``index``: zero-padded to 5 digits, DAVIS style."""
    return f"{index:05d}"


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def image_files(
    folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES, noun: str = "image"
) -> list[Path]:
    """The files of ``folder`` with one of ``suffixes`` (not hidden), natural name order.

    Raises :class:`UserError` when two of them share a name but for the suffix (``a.jpg``
    and ``a.png``): names identify frames and the masks that go with images.
    """
    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
        ),
        key=lambda p: _natural_key(p.name),
    )
    stems: dict[str, Path] = {}
    for file in files:
        if file.stem in stems:
            raise UserError(
                f"{file}: two {noun}s named '{file.stem}' ({stems[file.stem].name}); "
                "keep one image per name"
            )
        stems[file.stem] = file
    return files


class FolderSource(FrameSource):
    """The JPEG/PNG images of a folder, in natural order of their names."""

    def __init__(self, path: Path, fps: float = DEFAULT_FOLDER_FPS) -> None:
        files = image_files(path, noun="frame")
        if not files:
            raise UserError(
                f"{path}: folder has no images (.jpg, .jpeg, .png); pass a folder of frames "
                "or a video file"
            )
        self._files = files
        sizes = [_header_size(file) for file in files]
        for file, size in zip(files, sizes, strict=True):
            if size != sizes[0]:
                raise UserError(
                    f"{file}: image is {size_text(size[::-1])} but the first frame "
                    f"({files[0].name}) is {size_text(sizes[0][::-1])}; all frames of a folder "
                    "must have one size"
                )
        width, height = sizes[0]
        super().__init__(path, (height, width), fps)

    @property
    def num_frames(self) -> int:
        return len(self._files)

    @property
    def names(self) -> list[str]:
        return [file.stem for file in self._files]

    def _decode(self) -> Iterator[tuple[str, np.ndarray]]:
        for file in self._files:
            try:
                with Image.open(file) as image:
                    rgb = rgb_pixels(image)
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                raise _image_error(file, err) from err
            yield file.stem, rgb


def rgb_pixels(image: Image.Image) -> np.ndarray:
    """An opened image's pixels as ``uint8`` RGB, shape ``(H, W, 3)`` (possibly read-only).

    16-bit grayscale (modes ``I;16*``: PNG and TIFF of scientific, thermal or depth cameras)
    keeps its 8 most significant bits, as Pillow does for 16-bit colour; Pillow's own
    conversion would clip every value above 255 to white.
    """
    if image.mode.startswith("I;16"):
        gray = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _header_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image from its header (the pixels are not decoded)."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as err:  # over Pillow's limit
        raise _image_error(path, err) from err


def _image_error(path: Path, err: Exception) -> UserError:
    return UserError(f"{path}: cannot decode the image ({err}); remove or replace it")


@dataclass(frozen=True)
class _VideoInfo:
    size: tuple[int, int]  # (H, W) upright, as shown
    fps: float
    num_frames: int | None  # the frames shown (those the edit list hides not counted)
    turns: int = 0  # quarter turns counter-clockwise (np.rot90's k) from stored to shown
    hidden: int = 0  # frames stored but not shown (PyAV, like players, skips them)


def _probe_video(path: Path) -> _VideoInfo:
    """Open ``path`` with PyAV and decode its first frame; UserError if that is impossible."""
    import av

    try:
        hidden = _hidden_frames(path)
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path}: the video has 0 frames; pass a video with frames")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise UserError(f"{path}: the video has 0 frames; pass a video with frames")
            rate = stream.average_rate or stream.guessed_rate
            turns = round(first.rotation / 90) % 4  # the display matrix, counter-clockwise
            size = (first.height, first.width)
            return _VideoInfo(
                size=size[::-1] if turns % 2 else size,
                fps=float(rate) if rate else DEFAULT_FOLDER_FPS,
                num_frames=stream.frames - hidden if stream.frames else None,
                turns=turns,
                hidden=hidden,
            )
    except av.FFmpegError as err:
        raise UserError(
            f"{path}: cannot decode the video ({err.strerror}); pass a video file "
            "(mp4, mov, mkv, ...) or a folder of frames"
        ) from err


def _hidden_frames(path: Path) -> int:
    """The frames of ``path``'s video stream that players, ffmpeg and PyAV skip: packets
    before the first keyframe (a stream recorded or cut between keyframes, e.g. a .ts), which
    cannot be decoded, and packets an edit list hides (flagged discard: a clip cut without
    re-encoding keeps those from the keyframe before the cut). 0 unless the first packet is
    one of them (only then one demux pass, no decoding, counts them)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return 0
        packets = (p for p in container.demux(container.streams.video[0]) if p.size)
        first = next(packets, None)
        if first is None or (first.is_keyframe and not first.is_discard):
            return 0
        hidden, keyed = 0, False
        for packet in itertools.chain([first], packets):
            keyed = keyed or packet.is_keyframe
            hidden += packet.is_discard or not keyed
        return hidden


class _VideoSource(FrameSource):
    """A video file: names are zero-padded indices."""

    def __init__(self, path: Path, info: _VideoInfo, fps: float | None) -> None:
        super().__init__(path, info.size, fps or info.fps)
        self._num_frames = info.num_frames
        self._turns = info.turns
        self._hidden = info.hidden
        self._counted: int | None = None

    @property
    def num_frames(self) -> int | None:
        return self._num_frames

    @property
    def names(self) -> list[str]:
        count = self._num_frames
        if count is None:
            count = self._count_packets() - self._hidden
        return [video_frame_name(i) for i in range(count)]

    def _count_packets(self) -> int:
        """Frames in a container that does not declare its count: one demux pass, no decoding."""
        import av

        if self._counted is None:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                self._counted = sum(1 for packet in container.demux(stream) if packet.size)
        return self._counted


class PyAVSource(_VideoSource):
    """A video decoded by PyAV (FFmpeg), frame by frame in presentation order, turned upright."""

    def _upright(self, rgb: np.ndarray) -> np.ndarray:
        """A decoded (H, W, 3) frame turned as the container's display matrix shows it."""
        return np.ascontiguousarray(np.rot90(rgb, self._turns)) if self._turns else rgb

    def _decode(self) -> Iterator[tuple[str, np.ndarray]]:
        import av

        index = 0
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threading: a few frames in flight, still O(1)
            try:
                for frame in container.decode(stream):
                    yield video_frame_name(index), self._upright(frame.to_ndarray(format="rgb24"))
                    index += 1
            except av.FFmpegError as err:
                raise _corrupt_error(self.path, index, err.strerror) from err


class DecordSource(_VideoSource):
    """A video decoded by decord, sequentially with ``next()``.

    decord's batch/index API (``get_batch``, ``vr[a:b]``) materialises every requested frame;
    ``next()`` decodes one frame per call and its memory stays flat over a long video.

    The frame count is the container's declared one (from the PyAV probe), not decord's own
    index, which counts only the packets it found (35 of 82 in a cut-short file).
    """

    def __init__(self, path: Path, info: _VideoInfo, fps: float | None) -> None:
        if info.hidden:
            raise UserError(
                f"{path}: players skip {info.hidden} frames of this video (before its first "
                "keyframe, or hidden by its edit list), which decord decodes; use `backend` pyav"
            )
        if info.turns:
            raise UserError(
                f"{path}: the video is shown turned {info.turns * 90} degrees (its display "
                "matrix), which decord does not turn reliably; use `backend` pyav"
            )
        decord = _import_decord()
        try:
            self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        except (RuntimeError, decord.DECORDError) as err:
            raise UserError(
                f"{path}: decord cannot open this video ({_decord_reason(err)}); use `backend` pyav"
            ) from err
        super().__init__(path, info, fps)

    def _decode(self) -> Iterator[tuple[str, np.ndarray]]:
        decord = _import_decord()
        self._reader.seek(0)
        found = len(self._reader)
        for index in range(found):
            try:
                rgb = self._reader.next().asnumpy()
            except StopIteration:  # fewer frames than decord's index promised
                return
            except decord.DECORDError as err:
                declared = self.num_frames
                if declared is not None and found < declared:  # the file is cut short
                    raise _truncated_error(self.path, index, declared) from err
                raise _corrupt_error(self.path, index, _decord_reason(err)) from err
            yield video_frame_name(index), rgb


def _decord_reason(err: BaseException) -> str:
    """decord's error without its C++ log prefixes ("[20:15:01] /src/…/x.cc:486: ")."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", text)
    return text.split("Check failed: ")[-1].split(": ")[-1].strip(" .")[:120]


def _corrupt_error(path: Path, index: int, reason: str) -> UserError:
    return UserError(
        f"{path}: frame {index} cannot be decoded ({reason}); the file is damaged, "
        "re-encode it (e.g. ffmpeg -i in.mp4 out.mp4)"
    )


def _truncated_error(path: Path, decoded: int, declared: int) -> UserError:
    """The error for a video that ends after ``decoded`` of its ``declared`` frames."""
    return UserError(
        f"{path}: the video ends after {decoded} frames but declares {declared}; the file is "
        "truncated (an interrupted download or copy?): copy it again, or re-encode what is "
        "there (e.g. ffmpeg -i in.mp4 out.mp4)"
    )


def _import_decord() -> ModuleType:
    """decord, with its bundled FFmpeg's log lines on stderr turned off.

    decord loads its libraries into the global symbol scope, its own zlib 1.2.3 among them;
    OpenCV loaded after that binds its PNG codec to that zlib, and every ``cv2.imread`` of a
    PNG then fails ("libpng error: bad parameters to zlib"). OpenCV is loaded first.
    """
    import cv2  # noqa: F401 (before decord: see above)
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    return decord


def decord_available() -> bool:
    """Whether decord can be imported (it has wheels for Linux x86_64 only)."""
    try:
        _import_decord()
    except (ImportError, OSError):
        return False
    return True


def open_frames(
    path: str | os.PathLike[str], backend: str = "auto", fps: float | None = None
) -> FrameSource:
    """Open a video file or a folder of JPEG/PNG frames for streaming.

    ``backend``: ``"auto"`` (a folder → folder source; a video → decord if importable, else
    PyAV; PyAV also when decord cannot decode the file), or ``"decord"`` | ``"pyav"`` |
    ``"folder"`` to force one. ``fps`` overrides the frame rate (a folder has none: default
    :data:`DEFAULT_FOLDER_FPS`). Raises :class:`UserError` for a missing path, an undecodable
    file, a video of 0 frames, a folder with no images, an unknown backend, or decord
    requested but not installed.
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if fps is not None and not fps > 0:
        raise UserError(f"frame rate must be positive, got {fps}")
    require_input(path, VIDEO_INPUT, kind="any")
    if path.is_dir():
        if backend not in ("auto", "folder"):
            raise UserError(f"{path}: is a folder; backend '{backend}' reads video files only")
        return FolderSource(path, fps or DEFAULT_FOLDER_FPS)
    if backend == "folder":
        raise UserError(f"{path}: backend 'folder' needs a folder of images, not a file")
    if backend == "decord" and not decord_available():
        raise UserError(
            "decord is not installed (it has wheels for Linux x86_64 only); "
            "use `backend` pyav, or `pip install decord`"
        )
    info = _probe_video(path)
    if backend == "decord" or (backend == "auto" and decord_available()):
        try:
            return DecordSource(path, info, fps)
        except UserError:
            if backend == "decord":
                raise
    return PyAVSource(path, info, fps)
