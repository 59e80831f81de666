"""Damaged inputs written by tests: cut-short and corrupted copies of a real video."""

from __future__ import annotations

from pathlib import Path

import av


def faststart_copy(video: Path, out: Path) -> None:
    """``video`` remuxed (no re-encoding) with its index first, as streaming sites serve mp4s."""
    options = {"movflags": "+faststart"}
    with av.open(str(video)) as src, av.open(str(out), "w", options=options) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)


def cut_video(video: Path, folder: Path, fraction: float) -> Path:
    """A copy of ``video`` cut after ``fraction`` of its bytes, its index (moov) intact.

    Like an interrupted download: the container still declares every frame.
    """
    whole = folder / f"{video.stem}_whole.mp4"
    faststart_copy(video, whole)
    data = whole.read_bytes()
    cut = folder / f"{video.stem}_cut{round(100 * fraction)}.mp4"
    cut.write_bytes(data[: int(len(data) * fraction)])
    whole.unlink()
    return cut


def corrupt_video(video: Path, folder: Path) -> Path:
    """A copy of ``video`` with its second half of bytes (frame data, not the index) zeroed."""
    data = bytearray(video.read_bytes())
    start, end = len(data) // 3, len(data) - 4096  # the index (moov) is in the last 1.5 KB
    data[start:end] = bytes(end - start)
    bad = folder / f"{video.stem}_corrupt.mp4"
    bad.write_bytes(bytes(data))
    return bad
