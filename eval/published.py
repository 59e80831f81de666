"""The published figures our benchmarks are printed beside: one table, read by every benchmark.

:data:`TABLE1` is SAMIC's Table 1 (CVPR 2025): 1-shot mIoU x 100 of the few-shot image sets
(PASCAL-5i and COCO-20i: the mean over the 4 folds) and J&F-Mean x 100 of DAVIS val (DAVIS-16
and DAVIS-17), per method; ``None`` where the paper prints "–". :data:`DAVIS_ONLY` holds the
video methods published on DAVIS alone. :func:`published` gives one column of them.
"""

from __future__ import annotations

# The paper's columns, in its order; each is a `bench paper` column of the same key.
COLUMNS = (
    "coco20i",
    "pascal5i",
    "fss1000",
    "perseg",
    "tsmu",
    "nwpu-vhr10",
    "kvasir",
    "davis2016",
    "davis2017",
)
# Method -> one figure per column of COLUMNS (x 100).
TABLE1: dict[str, tuple[float | None, ...]] = {
    "SAMIC (paper, ViT-H)": (53.1, 80.4, 89.0, 97.5, 88.2, 70.1, 69.3, 87.2, 80.6),
    "PerSAM (ViT-H)": (23.0, 29.8, 71.2, 86.1, 36.3, 23.1, 45.8, None, 60.3),
    "Matcher (ViT-G)": (52.7, 76.9, 87.0, 86.6, 52.9, 51.6, 63.5, 86.1, 79.5),
}
# Video methods published on DAVIS only (J&F-Mean x 100): (DAVIS-16, DAVIS-17).
DAVIS_ONLY: dict[str, tuple[float | None, float | None]] = {
    "SAM-PT": (None, 76.65),
    "XMem": (92.0, 87.7),
}


def published(column: str, *, with_missing: bool = True) -> dict[str, float | None]:
    """Every method's published figure of ``column`` (a key of :data:`COLUMNS`); the DAVIS
    columns add :data:`DAVIS_ONLY`. ``with_missing=False`` leaves out the methods without one.
    """
    index = COLUMNS.index(column)
    figures = {method: row[index] for method, row in TABLE1.items()}
    if column.startswith("davis"):
        year = 0 if column == "davis2016" else 1
        figures.update({method: row[year] for method, row in DAVIS_ONLY.items()})
    return {k: v for k, v in figures.items() if with_missing or v is not None}
