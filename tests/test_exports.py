"""`samic-vos export`: a SAMBOX folder written as COCO, YOLO-seg, LabelMe and VOC, each read
back by the format's own rules (pycocotools; our readers of the YOLO-seg, LabelMe and VOC
specifications) and compared with the masks pixel for pixel; the mistakes."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw
from pycocotools.coco import COCO

from samic_vos.commands.cli import main
from samic_vos.data.mask_io import read_mask, write_mask
from samic_vos.data.sambox_format import SamboxAnnotation, SamboxObject, write_annotation

H, W = 48, 64
# per image: object id → (label, squares (row, col, side)); object 2 of "a" is in two parts
OBJECTS = {
    "a": {1: ("cat", [(4, 4, 10)]), 2: ("dog", [(20, 30, 8), (36, 50, 6)])},
    "b": {3: ("dog", [(10, 40, 12)]), 4: (None, [(30, 5, 9)])},
}
CATEGORIES = {"cat": 1, "dog": 2, "object 4": 3}  # labels in order of first appearance


def _ids(name: str) -> np.ndarray:
    ids = np.zeros((H, W), np.uint8)
    for object_id, (_, squares) in OBJECTS[name].items():
        for row, col, side in squares:
            ids[row : row + side, col : col + side] = object_id
    return ids


@pytest.fixture
def sambox(tmp_path) -> Path:
    folder = tmp_path / "sambox"
    (folder / "masks").mkdir(parents=True)
    for n, (name, objects) in enumerate(OBJECTS.items()):
        Image.fromarray(np.full((H, W, 3), 40 * n, np.uint8)).save(folder / f"{name}.png")
        write_mask(folder / "masks" / f"{name}.png", _ids(name))
        entries = [
            SamboxObject(
                id=k,
                points=np.array([[sq[0][1] + 1.0, sq[0][0] + 1.0]]),
                label=label,
                mask=f"masks/{name}.png",
                sam_confidence=0.5 + k / 10,
            )
            for k, (label, sq) in objects.items()
        ]
        annotation = SamboxAnnotation(image=f"{name}.png", image_size=(H, W), objects=entries)
        write_annotation(folder / f"{name}.sambox.json", annotation)
    return folder


def _export(fmt: str, source: Path, out: Path) -> int:
    return main(["export", "--format", fmt, str(source), "-o", str(out)])


def _category(object_id: int) -> int:
    for objects in OBJECTS.values():
        if object_id in objects:
            return CATEGORIES[objects[object_id][0] or f"object {object_id}"]
    raise KeyError(object_id)


def draw_yolo(polygons: list[np.ndarray], shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """Rasterise YOLO-seg polygons (x, y in pixels, float32 as Ultralytics reads them) as
    Ultralytics does (``ultralytics.data.utils.polygon2mask``: cast to int32, which truncates,
    then OpenCV's fillPoly)."""
    canvas = np.zeros(shape, np.uint8)
    for polygon in polygons:
        cv2.fillPoly(canvas, [np.asarray(polygon, dtype=np.float32).astype(np.int32)], 1)
    return canvas.astype(bool)


def draw_labelme(shapes: list[list[list[float]]], shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """Rasterise LabelMe polygons as LabelMe does (``labelme.utils.shape_to_mask``: Pillow's
    ``ImageDraw.polygon`` filled and outlined, pixel (x, y) at integer (x, y))."""
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for points in shapes:
        assert len(points) >= 3  # LabelMe asserts "Polygon must have points more than 2"
        draw.polygon([tuple(p) for p in points], outline=1, fill=1)
    return np.array(canvas, dtype=bool)


def _sambox_of(folder: Path, images: dict[str, tuple[np.ndarray, dict[int, str]]]) -> Path:
    """A SAMBOX folder of ``images``: name -> ((H, W) uint8 object ids, {object id: label})."""
    (folder / "masks").mkdir(parents=True)
    for name, (ids, labels) in images.items():
        Image.fromarray(np.zeros((*ids.shape, 3), np.uint8)).save(folder / f"{name}.png")
        write_mask(folder / "masks" / f"{name}.png", ids)
        entries = [
            SamboxObject(id=k, points=np.array([[0.0, 0.0]]), label=label, mask=f"masks/{name}.png")
            for k, label in labels.items()
        ]
        annotation = SamboxAnnotation(image=f"{name}.png", image_size=ids.shape, objects=entries)
        write_annotation(folder / f"{name}.sambox.json", annotation)
    return folder


def read_yolo_seg(path: Path, shape: tuple[int, int]) -> dict[int, list[np.ndarray]]:
    """A YOLO-seg label file's polygons in pixels, by class, checked against the format."""
    by_class: dict[int, list[np.ndarray]] = {}
    for line in path.read_text().splitlines():
        # YOLO-seg: "<class> x1 y1 ... xn yn", coordinates in [0, 1], n >= 3
        values = line.split()
        cls, coords = int(values[0]), np.array(values[1:], float)
        assert len(coords) % 2 == 0 and len(coords) >= 6
        assert ((coords >= 0) & (coords <= 1)).all()
        xy = coords.astype(np.float32).reshape(-1, 2) * np.array(shape[::-1], np.float32)
        by_class.setdefault(cls, []).append(xy)
    return by_class


def test_coco(sambox, tmp_path):
    assert _export("coco", sambox, tmp_path / "coco") == 0
    coco = COCO(str(tmp_path / "coco" / "coco.json"))
    assert {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())} == CATEGORIES
    for image_id, name in zip(coco.getImgIds(), OBJECTS, strict=True):
        info = coco.loadImgs(image_id)[0]
        assert (info["file_name"], info["height"], info["width"]) == (f"{name}.png", H, W)
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert len(annotations) == len(OBJECTS[name])
        ids = _ids(name)
        for ann, object_id in zip(annotations, OBJECTS[name], strict=True):
            pixels = coco.annToMask(ann).astype(bool)
            assert np.array_equal(pixels, ids == object_id)
            assert ann["area"] == (ids == object_id).sum()
            assert ann["category_id"] == _category(object_id)
            assert ann["score"] == pytest.approx(0.5 + object_id / 10)


def test_yolo_seg(sambox, tmp_path):
    out = tmp_path / "yolo"
    assert _export("yolo", sambox, out) == 0
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {i: label for i, label in enumerate(CATEGORIES)}
    # Ultralytics: train/val are required, relative to the YAML's folder (no `path` given); a
    # label is the image's path with its last images/ as labels/ and its suffix as .txt
    assert (data["train"], data["val"]) == ("images", "images") and "path" not in data
    images = sorted((out / data["train"]).iterdir())
    assert [p.name for p in images] == [f"{name}.png" for name in OBJECTS]
    for image in images:
        assert image.read_bytes() == (sambox / image.name).read_bytes()  # copied as it was
        label = str(image).rsplit("/images/", 1)
        assert Path("/labels/".join(label)).with_suffix(".txt").is_file()
    for name in OBJECTS:
        ids = _ids(name)
        by_class = read_yolo_seg(out / "labels" / f"{name}.txt", (H, W))
        expected: dict[int, np.ndarray] = {}
        for object_id in OBJECTS[name]:
            cls = _category(object_id) - 1
            expected[cls] = expected.get(cls, np.zeros((H, W), bool)) | (ids == object_id)
        assert sorted(by_class) == sorted(expected)
        for cls, polygons in by_class.items():
            assert np.array_equal(draw_yolo(polygons), expected[cls])
    # the object in two parts is two lines
    assert len((out / "labels" / "a.txt").read_text().splitlines()) == 3


def test_labelme(sambox, tmp_path):
    out = tmp_path / "labelme"
    assert _export("labelme", sambox, out) == 0
    for name in OBJECTS:
        document = json.loads((out / f"{name}.json").read_text())
        required = {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight"}
        assert required | {"imageWidth"} <= set(document)
        assert (document["imageHeight"], document["imageWidth"]) == (H, W)
        assert (out / document["imagePath"]).resolve() == (sambox / f"{name}.png").resolve()
        groups: dict[int, list[np.ndarray]] = {}
        for shape in document["shapes"]:
            assert shape["shape_type"] == "polygon" and len(shape["points"]) >= 3
            label = OBJECTS[name][shape["group_id"]][0] or f"object {shape['group_id']}"
            assert shape["label"] == label
            groups.setdefault(shape["group_id"], []).append(shape["points"])
        ids = _ids(name)
        assert sorted(groups) == sorted(OBJECTS[name])
        for object_id, polygons in groups.items():
            assert np.array_equal(draw_labelme(polygons), ids == object_id)


def test_voc(sambox, tmp_path):
    out = tmp_path / "voc"
    assert _export("voc", sambox, out) == 0
    # torchvision's VOCSegmentation(image_set="trainval") reads this list and, for each name,
    # JPEGImages/<name>.jpg and SegmentationClass/<name>.png
    listed = (out / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()
    assert listed == list(OBJECTS)
    for n, name in enumerate(OBJECTS):
        with Image.open(out / "JPEGImages" / f"{name}.jpg") as image:  # the PNG as JPEG
            assert image.format == "JPEG" and image.size == (W, H)
            assert np.abs(np.asarray(image, int) - 40 * n).max() <= 2
    labelmap = (out / "labelmap.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in labelmap] == ["background", *CATEGORIES]
    for name in OBJECTS:
        ids = _ids(name)
        classes = read_mask(out / "SegmentationClass" / f"{name}.png")
        objects = read_mask(out / "SegmentationObject" / f"{name}.png")
        with Image.open(out / "SegmentationClass" / f"{name}.png") as image:
            assert image.mode == "P"
        root = ElementTree.parse(out / "Annotations" / f"{name}.xml").getroot()
        assert root.findtext("filename") == f"{name}.jpg"
        assert root.findtext("size/width") == str(W) and root.findtext("size/height") == str(H)
        entries = root.findall("object")
        assert len(entries) == len(OBJECTS[name])
        for number, (object_id, entry) in enumerate(zip(OBJECTS[name], entries, strict=True), 1):
            pixels = ids == object_id
            assert (classes[pixels] == _category(object_id)).all()
            assert np.array_equal(objects == number, pixels)
            rows, cols = np.nonzero(pixels)
            box = [int(entry.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            assert box == [cols.min() + 1, rows.min() + 1, cols.max() + 1, rows.max() + 1]
        assert not classes[ids == 0].any()


def test_mistakes(sambox, tmp_path, capsys):
    out = tmp_path / "never"
    assert _export("coco", tmp_path / "missing", out) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _export("yolo", empty, out) == 2
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(
        json.dumps({"format": "samic-vos/run", "command": "segment", "finished": False})
    )
    assert _export("voc", unfinished, out) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 3 and all("error:" in line for line in errors), errors
    assert "not finished" in errors[2]
    assert not out.exists()


def test_coco_polygons_draw_the_pixels_back(sambox, tmp_path):
    out = tmp_path / "coco"
    argv = ["export", "--format", "coco", "--coco-masks", "polygons", str(sambox), "-o", str(out)]
    assert main(argv) == 0
    coco = COCO(str(out / "coco.json"))
    for image_id, name in zip(coco.getImgIds(), OBJECTS, strict=True):
        ids = _ids(name)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            assert isinstance(ann["segmentation"], list)  # polygons, one per part
            object_id = next(k for k in OBJECTS[name] if _category(k) == ann["category_id"])
            assert np.array_equal(coco.annToMask(ann).astype(bool), ids == object_id)
            assert ann["area"] == (ids == object_id).sum()
    two_parts = coco.loadAnns(coco.getAnnIds(imgIds=1))[1]
    assert len(two_parts["segmentation"]) == 2


def test_coco_polygons_of_round_and_ragged_shapes():
    """Polygons of shapes without holes give their pixels back through pycocotools."""
    from pycocotools import mask as mask_utils

    from samic_vos.data.exports.coco import mask_annotation
    from samic_vos.data.exports.sources import ExportObject

    rows, cols = np.mgrid[:120, :160]
    shapes = {
        "disc": (rows - 60) ** 2 + (cols - 80) ** 2 <= 37**2,
        "ellipse": ((rows - 50) / 30.0) ** 2 + ((cols - 70) / 55.0) ** 2 <= 1,
        "ragged": (rows - 60) ** 2 + (cols - 80) ** 2 <= (30 + 12 * np.sin(cols / 3.0)) ** 2,
        "pixel": (rows == 3) & (cols == 7),
        "diagonal": (np.abs(rows - cols) <= 1) & (rows < 100),
    }
    for name, mask in shapes.items():
        ids = mask.astype(np.uint8)
        ann = mask_annotation(ids, ExportObject(1, 1), "polygons")
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], *ids.shape))
        drawn = mask_utils.decode(rle).astype(bool)
        assert np.array_equal(drawn, mask), name


def test_coco_masks_is_for_coco_only(sambox, tmp_path, capsys):
    out = tmp_path / "never"
    argv = ["export", "--format", "yolo", "--coco-masks", "polygons", str(sambox), "-o", str(out)]
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and "--coco-masks is for --format coco, not yolo" in errors[0]
    assert not out.exists()


def test_export_beside_another_export_is_refused(sambox, tmp_path, capsys):
    """An OUT holding a yolo/labelme/voc export of other images is refused before anything is
    written (written beside it, the export would be a mix of two: YOLO labels of classes its
    data.yaml does not name, VOC masks its list does not hold); the same images again are
    re-exported in place, and coco (one file) always replaces its file."""
    other = tmp_path / "other"
    other.mkdir()
    for path in sambox.rglob("*"):  # the same annotations under other names
        target = other / path.relative_to(sambox).as_posix().replace("a.", "c.")
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(path.read_bytes())
    annotation = other / "c.sambox.json"
    annotation.write_text(annotation.read_text().replace("a.", "c."))
    probes = (("yolo", "labels/c.txt"), ("labelme", "c.json"), ("voc", "Annotations/c.xml"))
    for fmt, probe in probes:
        out = tmp_path / f"out-{fmt}"
        assert _export(fmt, other, out) == 0
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
        capsys.readouterr()
        assert _export(fmt, sambox, out) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"samic-vos: error: {out}: holds a {fmt} export")
        assert "Traceback" not in err[0]
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
        assert not (out / probe.replace("c.", "a.")).exists()
        assert _export(fmt, other, out) == 0  # the same images: exported again in place
    out = tmp_path / "out-coco"
    assert _export("coco", other, out) == 0 and _export("coco", sambox, out) == 0
    assert [i["file_name"] for i in json.loads((out / "coco.json").read_text())["images"]] == [
        "a.png",
        "b.png",
    ]


def test_an_object_without_pixels_is_left_out(sambox, tmp_path):
    """A SAMBOX object whose saved mask has no pixel (all erased) is in no export: VOC lists
    only the objects it draws (it used to stop on a traceback), COCO annotates the others."""
    from samic_vos.data.sambox_format import read_annotation

    path = sambox / "b.sambox.json"
    annotation = read_annotation(path)
    annotation.objects.append(
        SamboxObject(id=9, points=np.array([[2.0, 2.0]]), label="cat", mask="masks/b.png")
    )
    write_annotation(path, annotation)
    for fmt in ("coco", "yolo", "labelme", "voc"):
        assert _export(fmt, sambox, tmp_path / fmt) == 0, fmt
    root = ElementTree.parse(tmp_path / "voc" / "Annotations" / "b.xml").getroot()
    assert [e.findtext("name") for e in root.findall("object")] == ["dog", "object 4"]
    coco = json.loads((tmp_path / "coco" / "coco.json").read_text())
    assert len([a for a in coco["annotations"] if a["image_id"] == 2]) == 2
    labelme = json.loads((tmp_path / "labelme" / "b.json").read_text())
    assert sorted({s["group_id"] for s in labelme["shapes"]}) == [3, 4]


def test_objects_of_one_or_two_pixels_are_kept(tmp_path):
    """An object of one pixel, of two, and a part of one pixel beside a larger one are in the
    LabelMe and YOLO-seg exports (degenerate polygons that their rasterisers draw as those
    pixels), as they are in COCO and VOC; they used to be dropped."""
    ids = np.zeros((H, W), np.uint8)
    ids[5, 7] = 1  # one pixel
    ids[10, 20:22] = 2  # two pixels
    ids[30:36, 30:36] = 3  # a square and, apart from it, a single pixel
    ids[40, 50] = 3
    folder = _sambox_of(tmp_path / "tiny", {"tiny": (ids, {1: "dot", 2: "pair", 3: "square"})})
    assert _export("labelme", folder, tmp_path / "labelme") == 0
    document = json.loads((tmp_path / "labelme" / "tiny.json").read_text())
    for object_id in (1, 2, 3):
        shapes = [s["points"] for s in document["shapes"] if s["group_id"] == object_id]
        assert np.array_equal(draw_labelme(shapes), ids == object_id), object_id
    assert _export("yolo", folder, tmp_path / "yolo") == 0
    by_class = read_yolo_seg(tmp_path / "yolo" / "labels" / "tiny.txt", (H, W))
    assert {k: len(v) for k, v in by_class.items()} == {0: 1, 1: 1, 2: 2}
    for object_id in (1, 2, 3):
        assert np.array_equal(draw_yolo(by_class[object_id - 1]), ids == object_id)


def test_yolo_seg_gives_ultralytics_the_pixels_back(tmp_path):
    """On a 854x480 frame (widths whose 6-decimal fractions are inexact), shapes without holes
    come back from the YOLO-seg labels pixel for pixel as Ultralytics draws them: points at
    the boundary pixels' centres ((c + 0.5) / width), which Ultralytics' truncation to integers
    puts back on their pixels. Points at c / width lost up to a pixel row and column of each
    shape (the truncation of c - 1e-6 is c - 1)."""
    shape = (480, 854)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    ids = np.zeros(shape, np.uint8)
    ids[(rows - 200) ** 2 + (cols - 300) ** 2 <= 97**2] = 1  # a disc
    ragged = (rows - 300) ** 2 + (cols - 650) ** 2 <= (80 + 25 * np.sin(cols / 7.0)) ** 2
    ids[ragged] = 2
    ids[20:23, 811:853] = 3  # a thin bar reaching the right edge
    labels = {1: "disc", 2: "ragged", 3: "bar"}
    folder = _sambox_of(tmp_path / "frame", {"frame": (ids, labels)})
    assert _export("yolo", folder, tmp_path / "yolo") == 0
    by_class = read_yolo_seg(tmp_path / "yolo" / "labels" / "frame.txt", shape)
    for object_id in labels:
        drawn = draw_yolo(by_class[object_id - 1], shape)
        assert np.array_equal(drawn, ids == object_id), labels[object_id]


def _track_run_of_video(tmp_path: Path, frames: int = 3) -> tuple[Path, Path, list[np.ndarray]]:
    """A finished `track` run of an H.264 video file (a square, object 1, in every frame) as
    `track` writes it (run.json with the video's fingerprint, prompts.jsonl, masks/); returns
    the run, the video and its frames as decoded."""
    import av

    from samic_vos.runtime.runs import fingerprint

    video = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for _ in range(frames):
            rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(video)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    run = tmp_path / "run"
    (run / "masks").mkdir(parents=True)
    ids = np.zeros((H, W), np.uint8)
    ids[5:20, 10:30] = 1
    lines = []
    for t in range(frames):
        write_mask(run / "masks" / f"{t:05d}.png", ids)
        lines.append(json.dumps({"frame": f"{t:05d}", "objects": {"1": {"confidence": 0.5}}}))
    (run / "prompts.jsonl").write_text("".join(f"{line}\n" for line in lines))
    manifest = {
        "format": "samic-vos/run",
        "command": "track",
        "inputs": {"video": fingerprint(video)},
        "config": {"backend": "pyav"},
        "finished": True,
    }
    (run / "run.json").write_text(json.dumps(manifest))
    return run, video, decoded


def test_frames_of_a_video_file_go_with_their_labels(tmp_path, capsys):
    """A video file's frames are no files: the formats that load images from beside their
    labels get each frame decoded (LabelMe a PNG next to its JSON, which LabelMe opens through
    imagePath; YOLO-seg images/*.png; VOC JPEGImages/*.jpg). A video changed since the run
    gives no frames: the labels are written and one warning says which images are missing."""
    run, video, decoded = _track_run_of_video(tmp_path)
    names = [f"run__{t:05d}" for t in range(len(decoded))]
    for fmt in ("labelme", "yolo", "voc"):
        assert _export(fmt, run, tmp_path / fmt) == 0, fmt
    for name, rgb in zip(names, decoded, strict=True):
        document = json.loads((tmp_path / "labelme" / f"{name}.json").read_text())
        assert document["imagePath"] == f"{name}.png"
        assert np.array_equal(np.asarray(Image.open(tmp_path / "labelme" / f"{name}.png")), rgb)
        yolo_image = tmp_path / "yolo" / "images" / f"{name}.png"
        assert yolo_image.read_bytes() == (tmp_path / "labelme" / f"{name}.png").read_bytes()
        with Image.open(tmp_path / "voc" / "JPEGImages" / f"{name}.jpg") as image:
            assert image.format == "JPEG" and image.size == (W, H)
    assert "warning" not in capsys.readouterr().err
    with open(video, "ab") as changed:
        changed.write(b"\0")
    assert _export("yolo", run, tmp_path / "yolo-changed") == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and "warning: 3 of 3 images are no longer where" in err[0], err
    assert sorted(p.name for p in (tmp_path / "yolo-changed" / "labels").iterdir()) == [
        f"{name}.txt" for name in names
    ]
    assert not any((tmp_path / "yolo-changed" / "images").iterdir())
    assert _export("labelme", run, tmp_path / "labelme-changed") == 0
    document = json.loads((tmp_path / "labelme-changed" / f"{names[0]}.json").read_text())
    assert document["imagePath"] == "run/00000"  # the source's name of the frame, as before
