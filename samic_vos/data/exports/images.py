"""The images of an export, written beside its labels for the formats whose tools load them from
there: YOLO-seg's ``images/`` (Ultralytics finds ``labels/<name>.txt`` from
``images/<name>.<ext>``), VOC's ``JPEGImages/<name>.jpg`` (torchvision's ``VOCSegmentation``
opens exactly that) and LabelMe's frames of a video file (LabelMe opens ``imagePath``).

An image file is copied as it is (no re-encoding), a frame of a video file is decoded
(:attr:`~samic_vos.data.exports.sources.ExportItem.frame`) and written as PNG, and where JPEG is
required a PNG is encoded as JPEG (quality :data:`JPEG_QUALITY`). An image that is no longer
available (its file moved away, the video moved or changed since the run) is left out and
counted (:class:`MissingImages`), so that the labels are still written.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from PIL import Image

from samic_vos.data.exports.sources import ExportItem
from samic_vos.runtime.atomic import atomic_path

log = logging.getLogger(__name__)

JPEG_QUALITY = 95  # where a PNG must become JPEG (VOC's JPEGImages)
JPEG_SUFFIXES = (".jpg", ".jpeg")


def write_image(item: ExportItem, stem: Path, jpeg: bool = False) -> Path | None:
    """Write ``item``'s image as ``stem`` plus a suffix, atomically: its file copied (its own
    suffix, lower case; ``.jpg`` for ``.jpeg``), or the decoded frame of a video file as
    ``.png``; with ``jpeg``, always ``.jpg`` (a JPEG file copied, anything else encoded).
    Returns the file written, or ``None`` where the image is not available."""
    source = item.image if item.image is not None and item.image.is_file() else None
    if source is not None and (not jpeg or source.suffix.lower() in JPEG_SUFFIXES):
        suffix = source.suffix.lower()
        path = stem.with_name(stem.name + (".jpg" if suffix in JPEG_SUFFIXES else suffix))
        with atomic_path(path) as tmp:
            shutil.copyfile(source, tmp)
        return path
    if source is not None:
        with Image.open(source) as opened:
            image = opened.convert("RGB")
    else:
        rgb = item.frame() if item.frame is not None else None
        if rgb is None:
            return None
        image = Image.fromarray(rgb)
    path = stem.with_name(stem.name + (".jpg" if jpeg else ".png"))
    with atomic_path(path) as tmp:
        image.save(tmp, format="JPEG" if jpeg else "PNG", quality=JPEG_QUALITY)
    return path


class MissingImages:
    """The images an export could not write; :meth:`report` logs them in one warning."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.total = 0

    def add(self, item: ExportItem, written: Path | None) -> Path | None:
        """Count ``item`` (its image ``written``, or ``None``); returns ``written``."""
        self.total += 1
        if written is None:
            self.names.append(item.name)
        return written

    def report(self, folder: Path) -> None:
        """Warn, in one line, of the images not written into ``folder``."""
        if self.names:
            more = f" and {len(self.names) - 1} more" if len(self.names) > 1 else ""
            log.warning(
                "%d of %d images are no longer where the run read them (%s%s): their labels "
                "are written without them; put the images in %s under the same names",
                len(self.names),
                self.total,
                self.names[0],
                more,
                folder,
            )
