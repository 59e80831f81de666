"""H.264 mp4 writing for overlay videos, playable in a browser.

:class:`VideoWriter` encodes RGB frames with PyAV into an mp4 (H.264, ``yuv420p``, ``moov``
atom first — "faststart" — so a browser can start playing before the whole file arrived).

Encoder: the first of :data:`H264_ENCODERS` this PyAV build has. The PyPI wheels of PyAV bundle
FFmpeg with libx264 (checked for PyAV 18: libx264 present, libopenh264 absent; ``h264_nvenc``
exists but needs an NVIDIA GPU, so it is not used).

``yuv420p`` stores colour at half resolution and needs an even width and height: a frame of odd
size is padded by one row/column repeating its last one (no pixel of the frame is lost; the
video is at most 1 px wider/taller than the frames).

The file is written to a temporary name beside the output and renamed on a successful close;
after an exception (or Ctrl-C, or a full disk) nothing is left under the final name nor the
temporary one. The output path is checked when the writer is made, before any frame is drawn.
"""

from __future__ import annotations

import contextlib
import os
import sys
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from samic_vos.runtime.atomic import atomic_path
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_file, reporting_write_errors

# Preferred first: libx264 is the reference encoder; libopenh264 is Cisco's, in some builds.
H264_ENCODERS = ("libx264", "libopenh264")
VIDEO_SUFFIXES = (".mp4",)
# Encoder threads: the overlay is a side output, encoded in the thread that writes (the
# tracking loop's background thread) without threads of its own, so that it never competes
# with the pipeline's own threads for the cores (libx264's default is 1.5 per core).
ENCODER_THREADS = 1
# libx264's macroblock-tree rate control reads memory it never wrote (with MALLOC_PERTURB_ set,
# every fill byte gives other bytes), so the same frames gave other bytes from run to run,
# depending on what the process had freed before (the decoder's threads, decord's FFmpeg).
# Without it the encoder is a function of its frames: same frames, same bytes.
X264_PARAMS = "mbtree=0"


def h264_encoder() -> str:
    """The name of the first H.264 encoder of :data:`H264_ENCODERS` that PyAV's FFmpeg has."""
    import av

    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises UnknownCodecError (a ValueError) or FFmpegError
            continue
        return name
    raise UserError(
        f"this PyAV build has no H.264 encoder ({', '.join(H264_ENCODERS)}); "
        "install PyAV's PyPI wheel: pip install --force-reinstall av"
    )


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` rounded up to even numbers, as ``yuv420p`` requires."""
    height, width = size
    return height + height % 2, width + width % 2


def check_video_path(path: Path, made: Path | None = None) -> None:
    """``path`` can take an overlay video: an ``.mp4`` name in an existing, writable folder, or
    in ``made`` (a folder the job creates before it opens the writer, e.g. `track`'s OUT) or
    one of the missing folders above it, which the job creates with it.

    Jobs call it with their other input checks, before any output is made; :class:`VideoWriter`
    calls it again when opened.

    Raises:
        UserError: another suffix, a missing or unwritable folder, or a folder at ``path``.
    """
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{path}: overlay videos are written as mp4; give a name ending in .mp4")
    check_writable_file(path)
    folder = path.parent.absolute()
    if not folder.is_dir() and not (
        made is not None and (folder == made.absolute() or folder in made.absolute().parents)
    ):
        raise UserError(f"{path.parent}: output folder does not exist; create it or choose another")


class VideoWriter:
    """Write RGB frames of size ``(H, W)`` to an H.264/yuv420p mp4 at ``fps`` frames per second.

    Use as a context manager; :meth:`write` takes ``uint8`` arrays of shape ``(H, W, 3)``, RGB.
    ``crf`` (0–51, lower = better) and ``preset`` are libx264's quality/speed settings;
    ``threads`` the encoder's threads (0: FFmpeg's automatic count, one or more per core).
    Making the writer checks ``path`` (an mp4 name, in an existing writable folder); the file
    is opened by ``with``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int],
        *,
        crf: int = 20,  # visually near-lossless for overlays at a modest file size
        preset: str = "veryfast",  # ~1.5x faster than "fast" at the same crf, a bit larger
        threads: int = ENCODER_THREADS,
    ) -> None:
        self.path = Path(path)
        check_video_path(self.path)
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.size = (int(size[0]), int(size[1]))
        self.fps = fps
        self.crf = crf
        self.preset = preset
        self.threads = threads
        self.frames_written = 0
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._container = None
        self._stream = None

    def __enter__(self) -> VideoWriter:
        import av

        encoder = h264_encoder()
        atomic = atomic_path(self.path)
        tmp = atomic.__enter__()
        try:
            with reporting_write_errors(self.path):
                container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
            # A float rate such as 29.97 becomes 2997/100; 30000/1001 stays exact.
            stream = container.add_stream(encoder, rate=Fraction(self.fps).limit_denominator(1001))
            stream.height, stream.width = even_size(self.size)
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = self.threads
            if encoder == "libx264":
                stream.options = {
                    "crf": str(self.crf),
                    "preset": self.preset,
                    "x264-params": X264_PARAMS,
                }
        except BaseException:
            atomic.__exit__(*sys.exc_info())
            raise
        self._atomic, self._container, self._stream = atomic, container, stream
        return self

    def write(self, rgb: np.ndarray) -> None:
        """Encode one frame: ``uint8`` array of shape ``(H, W, 3)`` (the writer's size), RGB."""
        import av

        if self._stream is None:
            raise RuntimeError("VideoWriter.write() outside its `with` block")
        if rgb.dtype != np.uint8 or rgb.shape != (*self.size, 3):
            raise ValueError(
                f"expected a uint8 frame of shape {(*self.size, 3)}, got {rgb.dtype} {rgb.shape}"
            )
        height, width = self.size
        if height % 2 or width % 2:
            rgb = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames_written
        with reporting_write_errors(self.path):  # PyAV's OSError for a full disk
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.frames_written += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        atomic, container, stream = self._atomic, self._container, self._stream
        self._atomic = self._container = self._stream = None
        if atomic is None:
            return
        if exc_type is not None:
            with contextlib.suppress(Exception):
                container.close()
            atomic.__exit__(exc_type, exc, tb)  # removes the temporary file
            return
        try:
            if self.frames_written == 0:
                raise ValueError(f"{self.path}: no frames were written")
            with reporting_write_errors(self.path):
                for packet in stream.encode():  # flush the encoder's delayed frames
                    container.mux(packet)
                container.close()  # faststart rewrites the file here, moving the index first
        except BaseException:
            with contextlib.suppress(Exception):
                container.close()
            atomic.__exit__(*sys.exc_info())
            raise
        atomic.__exit__(None, None, None)  # renames onto the final name
