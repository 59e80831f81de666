"""The writer of each export format (:data:`WRITERS`) and :func:`export_run`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from samic_vos.data.exports import EXPORT_FORMATS
from samic_vos.data.exports.coco import write_coco
from samic_vos.data.exports.labelme import write_labelme
from samic_vos.data.exports.sources import ExportSource, open_source
from samic_vos.data.exports.voc import write_voc
from samic_vos.data.exports.yolo import write_yolo

WRITERS: dict[str, Callable[[ExportSource, Path], Path]] = dict(
    zip(EXPORT_FORMATS, (write_coco, write_yolo, write_labelme, write_voc), strict=True)
)


def export_run(source: Path, format: str, out_dir: Path) -> Path:
    """Export the masks of ``source`` (a run folder or a SAMBOX folder) as ``format`` (one of
    :data:`EXPORT_FORMATS`) into ``out_dir``; returns the file (coco) or folder written."""
    return WRITERS[format](open_source(source), out_dir)
