"""The class list of `samic-vos annotate --classes`: names with colours, one number key each.

An entry is ``NAME`` or ``NAME=#RRGGBB``; without a colour, class k (1-based) takes the DAVIS
palette's colour k. A labels file (``--classes-file``) holds one entry per line; empty lines
and lines starting with ``#`` are skipped. In the page, number key k labels the active object
with class k (a new object if the active one already has prompts or a label), and an object
whose label is a class is drawn in the class's colour. Saved annotations carry the name as the
object's ``label``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from samic_vos.data.mask_io import DAVIS_PALETTE
from samic_vos.runtime.errors import UserError

MAX_CLASSES = 9  # number keys 1..9
MAX_NAME = 200  # as an object's label
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class AnnotationClass:
    """One class: its name and colour (R, G, B), 0..255 each."""

    name: str
    color: tuple[int, int, int]


def parse_classes(entries: list[str], where: str = "classes") -> list[AnnotationClass]:
    """The classes of ``entries`` (``NAME`` or ``NAME=#RRGGBB``); :class:`UserError` naming
    ``where`` and the entry when one is malformed, a name repeats, or there are more than
    :data:`MAX_CLASSES`."""
    if len(entries) > MAX_CLASSES:
        raise UserError(f"{where}: {len(entries)} classes; at most {MAX_CLASSES} (keys 1-9)")
    classes = []
    for k, entry in enumerate(entries, start=1):
        name, _, color = str(entry).partition("=")
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise UserError(f"{where}: class {k} '{entry}' needs a name of 1..{MAX_NAME} letters")
        if color and not _COLOR.fullmatch(color.strip()):
            raise UserError(f"{where}: class '{name}' has colour '{color}'; write it as #RRGGBB")
        if any(c.name == name for c in classes):
            raise UserError(f"{where}: class '{name}' is listed twice")
        rgb = (
            tuple(int(color.strip()[i : i + 2], 16) for i in (1, 3, 5))
            if color
            else tuple(int(v) for v in DAVIS_PALETTE[k])
        )
        classes.append(AnnotationClass(name, rgb))  # type: ignore[arg-type]
    return classes


def read_classes_file(path: Path) -> list[str]:
    """The entries of labels file ``path`` (one per line; blank and ``#`` lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the labels file ({err})") from err
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
