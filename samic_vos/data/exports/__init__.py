"""Export formats of masks: COCO (RLE), YOLO-seg, LabelMe and Pascal VOC, one writer module
each, over one reader of `segment` and `track` outputs and SAMBOX folders
(:mod:`samic_vos.data.exports.sources`). `samic-vos export`, `segment --format coco`,
`track --format coco` and SAMBOX use these same writers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from samic_vos.data.exports.coco import COCO_FILE, rle_annotation, write_coco
from samic_vos.data.exports.labelme import write_labelme
from samic_vos.data.exports.sources import (
    ExportItem,
    ExportObject,
    ExportSource,
    open_source,
)
from samic_vos.data.exports.voc import write_voc
from samic_vos.data.exports.yolo import write_yolo

WRITERS: dict[str, Callable[[ExportSource, Path], Path]] = {
    "coco": write_coco,
    "yolo": write_yolo,
    "labelme": write_labelme,
    "voc": write_voc,
}
EXPORT_FORMATS = tuple(WRITERS)


def export_run(source: Path, format: str, out_dir: Path) -> Path:
    """Export the masks of ``source`` (a run folder or a SAMBOX folder) as ``format`` into
    ``out_dir``; returns the file (coco) or folder written."""
    return WRITERS[format](open_source(source), out_dir)


__all__ = [
    "COCO_FILE",
    "EXPORT_FORMATS",
    "ExportItem",
    "ExportObject",
    "ExportSource",
    "export_run",
    "open_source",
    "rle_annotation",
]
