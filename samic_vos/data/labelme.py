"""LabelMe JSON annotations as few-shot data: polygons → masks, one class per label.

A LabelMe file (``<name>.json``, as LabelMe saves it) holds ``imagePath`` (the image, relative to
the JSON's folder; ``imageData``, an embedded copy, is not read), ``imageHeight`` and
``imageWidth``, and ``shapes``: each a ``label``, ``points`` (``[[x, y], ...]``, pixels, x to the
right, y down) and a ``shape_type``:

- ``polygon`` (the default when absent): at least 3 points, filled;
- ``rectangle``: two opposite corners; ``circle``: the centre and a point on the circle;
- ``point``, ``line``, ``linestrip``: no area, part of no mask (left out);
- anything else (``mask``, ``rotation``, ...): refused, naming the file and the shape.

The mask of a label in an image is the union of its shapes, drawn as LabelMe's own
``shape_to_mask`` draws them (Pillow ``ImageDraw``: ``polygon``/``rectangle``/``ellipse`` with
``fill=1, outline=1``); ``group_id`` is ignored (a class is the union of its instances).

Refused, one line naming the file, the label and the shape: a point outside the image (x not in
``[0, W]`` or y not in ``[0, H]``); a polygon with fewer than 3 distinct points; a
**self-intersecting polygon**: two of its edges that are not neighbours cross or touch. Its
filled area then depends on the fill rule of the tool that draws it (Pillow and OpenCV fill a
figure-eight's lobes, an even-odd rule empties a loop drawn over itself), so the mask would
not be the one the annotator saw; fix the polygon (or split it in two) in LabelMe. Repeated
consecutive points are dropped before the check (they draw nothing). Also refused, naming the
image: an image whose EXIF orientation tag is not 1 (a phone photo stored sideways): LabelMe
shows it turned upright and its points are in that frame, the readers use the stored pixels.

:class:`LabelmeDataset` (kind ``labelme``) reads every ``*.json`` under ``ROOT`` (recursively;
``*.sambox.json`` excluded). Optional lists ``ROOT/train.txt`` and ``ROOT/test.txt`` (one
annotation per line: its path relative to ``ROOT``, ``.json`` optional) split the files; with
one list, the other split is every other file; with none, every file is in both (training and
testing then see the same images: give a ``test.txt`` to keep test images unseen).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from samic_vos.data.fewshot_sets import FewShotItem, header_size
from samic_vos.data.listed_sets import LIST_SPLITS, ListedDataset, Splits, check_split
from samic_vos.data.sambox_format import SUFFIX as SAMBOX_SUFFIX
from samic_vos.data.sambox_format import natural_key
from samic_vos.runtime.errors import UserError, size_text

AREA_SHAPES = ("polygon", "rectangle", "circle")
NO_AREA_SHAPES = ("point", "line", "linestrip")
EXIF_ORIENTATION = 0x0112  # LabelMe shows (and annotates) an image turned upright by this tag


@dataclass(frozen=True)
class LabelmeShape:
    """One shape: ``label``, ``kind`` (one of :data:`AREA_SHAPES`), ``points`` ``(x, y)``."""

    label: str
    kind: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class LabelmeAnnotation:
    """One LabelMe file: ``path`` (the JSON), ``image`` (its image file), ``size`` ``(H, W)``
    and its area ``shapes`` (checked)."""

    path: Path
    image: Path
    size: tuple[int, int]
    shapes: tuple[LabelmeShape, ...]

    @property
    def labels(self) -> list[str]:
        """The labels of the shapes, natural order, each once."""
        return sorted({shape.label for shape in self.shapes}, key=natural_key)

    def mask(self, label: str) -> np.ndarray:
        """``bool (H, W)``: the union of the shapes of ``label`` (LabelMe's drawing rule)."""
        height, width = self.size
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for shape in self.shapes:
            if shape.label != label:
                continue
            if shape.kind == "rectangle":
                (x0, y0), (x1, y1) = shape.points
                box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
                draw.rectangle(box, outline=1, fill=1)
            elif shape.kind == "circle":
                (cx, cy), (px, py) = shape.points
                # LabelMe's own formula: math.hypot can differ from it by one ulp, enough to
                # move the box across an integer where Pillow truncates it (a row of pixels).
                radius = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
                box = (cx - radius, cy - radius, cx + radius, cy + radius)
                draw.ellipse(box, outline=1, fill=1)
            else:
                draw.polygon(list(shape.points), outline=1, fill=1)
        return np.asarray(canvas, dtype=bool)


def _orientation(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sign of the turn a → b → c (rows of (N, 2) arrays): +1 left, -1 right, 0 collinear."""
    cross = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
    cross = cross - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    return np.sign(cross)


def _on_segment(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Whether collinear point ``c`` lies within the bounding box of segment ``a``–``b``."""
    low, high = np.minimum(a, b), np.maximum(a, b)
    return np.all((c >= low) & (c <= high), axis=-1)


def self_intersection(points: np.ndarray) -> tuple[int, int] | None:
    """The first pair ``(i, j)`` of edges of the closed polygon ``points`` (``(N, 2)`` x, y;
    edge ``i`` joins points ``i`` and ``i + 1``) that are not neighbours and cross or touch;
    ``None`` for a simple polygon."""
    count = len(points)
    starts, ends = points, np.roll(points, -1, axis=0)
    for i in range(count - 2):
        last = count - 1 if i > 0 else count - 2  # edge 0 and edge N-1 are neighbours
        j = np.arange(i + 2, last + 1)
        if not len(j):
            continue
        a, b, c, d = starts[i], ends[i], starts[j], ends[j]
        o1, o2 = _orientation(a, b, c), _orientation(a, b, d)
        o3, o4 = _orientation(c, d, a), _orientation(c, d, b)
        hit = (o1 * o2 < 0) & (o3 * o4 < 0)
        hit |= (o1 == 0) & _on_segment(a, b, c)
        hit |= (o2 == 0) & _on_segment(a, b, d)
        hit |= (o3 == 0) & _on_segment(c, d, np.broadcast_to(a, c.shape))
        hit |= (o4 == 0) & _on_segment(c, d, np.broadcast_to(b, c.shape))
        if hit.any():
            return i, int(j[np.argmax(hit)])
    return None


def _shape(path: Path, number: int, raw: object, size: tuple[int, int]) -> LabelmeShape | None:
    """Shape ``number`` of file ``path`` checked; ``None`` for a shape without area."""
    where = f"{path}: shape {number}"
    if not isinstance(raw, dict):
        raise UserError(f"{where} is not an object; is this a LabelMe file?")
    label, kind = raw.get("label"), raw.get("shape_type") or "polygon"
    if (
        not isinstance(label, str)
        or label.strip() in ("", ".", "..")
        or any(c in label for c in "/\\")
    ):
        raise UserError(f"{where}: label {label!r} cannot name a class (no '/', '\\', '.' or '')")
    where = f"{where} ('{label}', {kind})"
    if kind in NO_AREA_SHAPES:
        return None
    if kind not in AREA_SHAPES:
        raise UserError(f"{where}: shape type not read; use {', '.join(AREA_SHAPES)}")
    try:
        points = np.asarray(raw["points"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{where}: points are not [[x, y], ...] ({err})") from err
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise UserError(f"{where}: points are not [[x, y], ...]")
    height, width = size
    outside = (points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0)
    outside |= points[:, 1] > height
    if outside.any():
        x, y = points[int(np.argmax(outside))]
        raise UserError(
            f"{where}: point ({x:g}, {y:g}) is outside the {width}x{height} image; "
            "move it inside in LabelMe"
        )
    if kind != "polygon":
        if len(points) != 2:
            raise UserError(f"{where}: a {kind} has 2 points, this one {len(points)}")
    else:
        points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]
        if len(points) < 3:
            raise UserError(f"{where}: a polygon needs 3 distinct points, this one {len(points)}")
        crossing = self_intersection(points)
        if crossing is not None:
            raise UserError(
                f"{where}: the polygon intersects itself (edges {crossing[0]} and "
                f"{crossing[1]}), so its filled area is ambiguous; redraw it without "
                "crossings in LabelMe"
            )
    return LabelmeShape(label, kind, tuple((float(x), float(y)) for x, y in points))


def _exif_orientation(image: Path) -> int | None:
    """The EXIF orientation tag of ``image`` (1 upright; 2..8 turned or mirrored), ``None``
    without one or when the file cannot be read (:func:`header_size` then says why)."""
    try:
        with Image.open(image) as opened:
            return opened.getexif().get(EXIF_ORIENTATION)
    except (OSError, ValueError, SyntaxError):
        return None


def read_labelme(path: str | os.PathLike[str]) -> LabelmeAnnotation:
    """One LabelMe file, checked (see the module docs); its image must be at ``imagePath``
    (relative to the file's folder) and of the declared ``imageHeight`` x ``imageWidth``.

    Raises :class:`UserError` naming the file (and the shape) for anything wrong.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        image = path.parent / str(data["imagePath"]).replace("\\", "/")
        size = (int(data["imageHeight"]), int(data["imageWidth"]))
        shapes = data["shapes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{path}: not a LabelMe file ({err}); it needs imagePath, imageHeight, "
            "imageWidth and shapes"
        ) from err
    if not isinstance(shapes, list):
        raise UserError(f"{path}: 'shapes' is not a list; is this a LabelMe file?")
    if not image.is_file():
        raise UserError(f"{image}: image not found (imagePath of {path}); keep it beside the JSON")
    orientation = _exif_orientation(image)
    if orientation not in (None, 1):
        raise UserError(
            f"{image}: EXIF orientation {orientation}: its pixels are stored turned or mirrored, "
            f"and LabelMe drew the shapes of {path.name} on the image as displayed, which these "
            "readers do not turn; save the image upright (pixels turned, orientation 1 or none)"
        )
    found = header_size(image)
    if found != size:
        raise UserError(
            f"{path}: declares a {size_text(size)} image but {image.name} is {size_text(found)}"
        )
    checked = (_shape(path, k, raw, size) for k, raw in enumerate(shapes))
    return LabelmeAnnotation(path, image, size, tuple(s for s in checked if s is not None))


def find_labelme(root: Path) -> list[Path]:
    """Every LabelMe ``*.json`` under ``root`` (``*.sambox.json`` excluded), natural order by
    path relative to ``root``."""
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; pass a folder of LabelMe JSON files")
    found = [p for p in root.rglob("*.json") if p.is_file() and not p.name.endswith(SAMBOX_SUFFIX)]
    return sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def _read_list(root: Path, split: str, known: dict[str, Path]) -> list[Path] | None:
    """``ROOT/<split>.txt`` as annotation files, or ``None`` when there is no such list."""
    list_path = root / f"{split}.txt"
    if not list_path.is_file():
        return None
    named = []
    for line in list_path.read_text(encoding="utf-8").splitlines():
        entry = line.strip().removesuffix(".json")
        if not entry:
            continue
        if entry not in known:
            raise UserError(
                f"{root / (entry + '.json')}: annotation not found, named by {list_path}; "
                "complete the folder or fix the list"
            )
        named.append(known[entry])
    return named


class LabelmeDataset(ListedDataset):
    """A folder of LabelMe annotations: one class per label, split by optional lists."""

    kind = "labelme"

    def __init__(self, root: str | os.PathLike[str], split: str = "test") -> None:
        check_split(split, "LabelMe")
        root = Path(root)
        files = find_labelme(root)
        if not files:
            raise UserError(f"{root}: holds no LabelMe *.json file; pass a folder of them")
        known = {p.relative_to(root).with_suffix("").as_posix(): p for p in files}
        given = {name: _read_list(root, name, known) for name in LIST_SPLITS}
        lists: dict[str, list[Path]] = {}
        for name, other in (("train", "test"), ("test", "train")):
            taken = set(given[other] or [])
            found = given[name]
            lists[name] = found if found is not None else [p for p in files if p not in taken]
        if given["train"] is not None and given["test"] is not None:
            both = set(lists["train"]) & set(lists["test"])
            if both:
                raise UserError(f"{min(both)}: named by both train.txt and test.txt in {root}")
        used = {p for name in LIST_SPLITS for p in lists[name]}
        self.annotations = {p: read_labelme(p) for p in files if p in used}
        self.labels = sorted(
            {label for a in self.annotations.values() for label in a.labels}, key=natural_key
        )
        splits: Splits = {}
        for name in LIST_SPLITS:
            classes: dict[str, list[FewShotItem]] = {label: [] for label in self.labels}
            for path in lists[name]:
                annotation = self.annotations[path]
                for label in annotation.labels:
                    value = self.labels.index(label) + 1
                    classes[label].append(FewShotItem(annotation.image, path, ((path, value),)))
            splits[name] = classes
        sources = {
            n: str(root / f"{n}.txt") if (root / f"{n}.txt").is_file() else f"{root} ({n})"
            for n in LIST_SPLITS
        }
        super().__init__(root, split, splits, sources)

    def read_mask(self, item: FewShotItem) -> np.ndarray:
        """``bool (H, W)``: the union of the item's label's shapes in its file."""
        ((path, value),) = item.parts
        return self.annotations[path].mask(self.labels[value - 1])

    def mask_size(self, item: FewShotItem) -> tuple[int, int]:
        """``(H, W)`` declared by the item's file (checked against its image when read)."""
        ((path, _),) = item.parts
        return self.annotations[path].size
