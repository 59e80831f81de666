"""Pascal VOC segmentation layout.

``JPEGImages/<name>.jpg``: each image (:func:`write_image`: a JPEG copied, any other image
encoded as JPEG, as VOC and torchvision's ``VOCSegmentation`` read only ``.jpg``);
``SegmentationClass/<name>.png``: palette PNG of category ids (VOC's colour map, which DAVIS
shares; 0 background; no 255 "void" border: the masks are exact); ``SegmentationObject/
<name>.png``: palette PNG of object ids (1..K in the image's object order);
``Annotations/<name>.xml``: ``filename`` (``<name>.jpg``), ``size`` and one ``object`` per
object (``name``: its category's, ``bndbox`` in VOC's 1-based inclusive pixels);
``ImageSets/Segmentation/trainval.txt``: the names, one a line (VOC's list of every image of
the task, which ``VOCSegmentation(image_set="trainval")`` reads); ``labelmap.txt``:
``name:r,g,b::`` per category id from 0 (background), as CVAT's VOC export writes it.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from samic_vos.data.exports.images import MissingImages, write_image
from samic_vos.data.exports.sources import ExportSource
from samic_vos.data.mask_io import davis_palette, write_mask
from samic_vos.runtime.atomic import atomic_path, atomic_write_text

IMAGES = "JPEGImages"
FOLDERS = (
    IMAGES,
    "SegmentationClass",
    "SegmentationObject",
    "Annotations",
    "ImageSets/Segmentation",
)
LIST_FILE = "ImageSets/Segmentation/trainval.txt"


def write_voc(source: ExportSource, out_dir: Path) -> Path:
    """Write the VOC layout of ``source`` into ``out_dir``; returns ``out_dir``."""
    for folder in FOLDERS:
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    missing = MissingImages()
    with atomic_path(out_dir / LIST_FILE) as tmp, open(tmp, "w", encoding="utf-8") as names:
        for item in source.items():
            missing.add(item, write_image(item, out_dir / IMAGES / item.name, jpeg=True))
            classes = np.zeros_like(item.ids)
            objects = np.zeros_like(item.ids)
            root = ElementTree.Element("annotation")
            ElementTree.SubElement(root, "filename").text = f"{item.name}.jpg"
            size = ElementTree.SubElement(root, "size")
            dims = (item.ids.shape[1], item.ids.shape[0], 3)
            for key, value in zip(("width", "height", "depth"), dims, strict=True):
                ElementTree.SubElement(size, key).text = str(value)
            ElementTree.SubElement(root, "segmented").text = "1"
            for number, obj in enumerate(item.objects, 1):
                pixels = item.ids == obj.id
                classes[pixels] = obj.category
                objects[pixels] = number
                rows, cols = np.nonzero(pixels)
                entry = ElementTree.SubElement(root, "object")
                ElementTree.SubElement(entry, "name").text = source.categories[obj.category]
                box = ElementTree.SubElement(entry, "bndbox")
                corners = (cols.min() + 1, rows.min() + 1, cols.max() + 1, rows.max() + 1)
                for key, value in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
                    ElementTree.SubElement(box, key).text = str(int(value))
            write_mask(out_dir / "SegmentationClass" / f"{item.name}.png", classes)
            write_mask(out_dir / "SegmentationObject" / f"{item.name}.png", objects)
            xml = ElementTree.tostring(root, encoding="unicode")
            atomic_write_text(out_dir / "Annotations" / f"{item.name}.xml", xml + "\n")
            names.write(f"{item.name}\n")
    missing.report(out_dir / IMAGES)
    palette = davis_palette()
    lines = ["background:0,0,0::"] + [
        f"{source.categories.get(k, f'class {k}')}:{','.join(str(int(c)) for c in palette[k])}::"
        for k in range(1, max(source.categories, default=0) + 1)
    ]
    atomic_write_text(out_dir / "labelmap.txt", "".join(f"{line}\n" for line in lines))
    return out_dir
