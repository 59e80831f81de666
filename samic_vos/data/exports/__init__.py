"""Export formats of masks: COCO (RLE or polygons), YOLO-seg, LabelMe and Pascal VOC, one writer
module each (:mod:`.coco`, :mod:`.yolo`, :mod:`.labelme`, :mod:`.voc`; the images they carry:
:mod:`.images`), over one reader of `segment`
and `track` outputs and SAMBOX folders (:mod:`.sources`); :func:`.writers.export_run` picks
the writer. `samic-vos export`, `segment --format coco`, `track --format coco` and SAMBOX use
these same writers. This package's import loads none of them (the CLI names the formats
without loading OpenCV or pycocotools).
"""

EXPORT_FORMATS = ("coco", "yolo", "labelme", "voc")
COCO_MASKS = ("rle", "polygons")  # how a COCO annotation's `segmentation` holds the pixels
# What `segment` and `track` write: png (masks/*.png only) or coco (also OUT/coco.json).
OUTPUT_FORMATS = ("png", "coco")
