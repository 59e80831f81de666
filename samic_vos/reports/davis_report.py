"""The DAVIS benchmark's HTML report: scores beside published figures, plots, overlay strips.

:func:`davis_report` turns one or more scored result sets (a prompter's results folder and its
:class:`~samic_vos.eval.davis_eval.DavisEvaluation`) into a :class:`~samic_vos.reports.html.Report`:

- the global table (J&F-Mean, J-Mean, F-Mean, J/F Recall and Decay, ×100), one row per result
  set, then the published figures given by the caller (greyed);
- J&F per object (per sequence for DAVIS-2016), the result sets side by side, as bars and as
  a table;
- J and F over the scored frames of the worst sequences;
- for the best and the worst sequences, a strip of overlay frames at evenly spaced frames (one
  row per result set): object colours and the prompt points of ``<prompts_dir>/<seq>.jsonl``
  (:mod:`samic_vos.inference.prompts_log` lines), drawn by :func:`samic_vos.reports.render.overlay`;
- the configuration (YAML text).

Sequences are ranked by the first result set's J&F (mean over the sequence's objects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samic_vos.data.davis import DavisDataset, read_image
from samic_vos.data.indexed_png import read_ids
from samic_vos.eval.davis_eval import DavisEvaluation, SequenceScores
from samic_vos.reports.html import Report, bar_chart, image_grid, line_chart
from samic_vos.reports.render import overlay, read_prompt_points

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The global table's columns, in reading order (keys of DavisEvaluation.global_scores).
TABLE_COLUMNS = ("J&F-Mean", "J-Mean", "F-Mean", "J-Recall", "F-Recall", "J-Decay", "F-Decay")
# Overlay tiles are this many pixels wide (5 per strip fit a 1250 px page); prompt points are
# drawn as discs of POINT_PX pixels, the outline OUTLINE_PX wide.
TILE_PX, POINT_PX, OUTLINE_PX = 240, 4, 1


@dataclass(frozen=True)
class ResultSet:
    """One prompter's scored results.

    ``label``: its name in the report; ``results_dir``: ``<seq>/<frame>.png`` masks;
    ``prompts_dir``: ``<seq>.jsonl`` prompt logs (``None`` or a missing file: no points drawn).
    """

    label: str
    evaluation: DavisEvaluation
    results_dir: Path
    prompts_dir: Path | None = None


def _percent(value: float) -> str:
    return f"{100.0 * value:.1f}"


def _sequence_jf(scores: SequenceScores) -> float:
    """J&F of a sequence: the mean over its objects of (mean J + mean F) / 2."""
    return float(np.mean((np.mean(scores.J, axis=1) + np.mean(scores.F, axis=1)) / 2.0))


def _object_label(name: str, year: str) -> str:
    """``bear_1`` → ``bear`` for DAVIS-2016 (one object per sequence)."""
    return name.rsplit("_", 1)[0] if year == "2016" else name


def davis_report(
    result_sets: Sequence[ResultSet],
    dataset: DavisDataset,
    *,
    published: Mapping[str, Mapping[str, float]] | None = None,
    config_yaml: str | None = None,
    title: str | None = None,
    ranked: int = 3,
    strip_frames: int = 5,
) -> Report:
    """The report of ``result_sets`` (scored against ``dataset``); see the module docstring.

    ``published``: method → {column of :data:`TABLE_COLUMNS` → figure ×100 as quoted, e.g.
    ``{"J&F-Mean": 87.2}``}; missing columns show "–". ``ranked``: how many worst (and best)
    sequences get time plots and strips; ``strip_frames``: frames per strip. The caller may add
    sections (timings, notes); :meth:`Report.write` saves it.
    """
    if not result_sets:
        raise ValueError("davis_report needs at least one result set")
    first = result_sets[0].evaluation
    year = dataset.year
    report = Report(title or f"DAVIS-{year} {first.split}: J&F")
    frames = sum(len(s.frames) for s in first.sequences)
    report.paragraph(
        f"{len(first.sequences)} sequences, {len(first.objects)} objects, {frames} scored "
        f"frames (every annotated frame but the first and last). Scores ×100."
    )
    _scores_table(report, result_sets, published or {})
    _per_object(report, result_sets, year)
    order = sorted(first.sequences, key=_sequence_jf, reverse=True)
    _over_time(report, result_sets, [s.sequence for s in order[::-1][:ranked]])
    # With fewer than 2 * ranked sequences, the better half are "best", the rest "worst".
    best = [s.sequence for s in order[: min(ranked, (len(order) + 1) // 2)]]
    worst = [s.sequence for s in order[::-1][: min(ranked, len(order) // 2)]]
    _strips(report, result_sets, dataset, best, worst, strip_frames)
    if config_yaml is not None:
        report.heading("Configuration")
        report.preformatted(config_yaml)
    return report


def _scores_table(
    report: Report, result_sets: Sequence[ResultSet], published: Mapping[str, Mapping[str, float]]
) -> None:
    report.heading("Scores")
    rows: list[list[str | float | None]] = [
        [r.label, *(r.evaluation.global_scores[c] for c in TABLE_COLUMNS)] for r in result_sets
    ]
    for method, figures in published.items():
        rows.append(
            [method, *(figures[c] / 100.0 if c in figures else None for c in TABLE_COLUMNS)]
        )
    report.table(
        ["Method", *TABLE_COLUMNS],
        rows,
        number=_percent,
        secondary=[False] * len(result_sets) + [True] * len(published),
        caption="Measured here (top), published (grey, as quoted in the papers)."
        if published
        else None,
        table_id="scores",
    )


def _per_object(report: Report, result_sets: Sequence[ResultSet], year: str) -> None:
    kind = "sequence" if year == "2016" else "object"
    names = [o.name for o in result_sets[0].evaluation.objects]
    by_set = [{o.name: o for o in r.evaluation.objects} for r in result_sets]

    def column(objects: dict, name: str, measure: str) -> float:
        obj = objects.get(name)
        if obj is None:
            return float("nan")
        j, f = obj.J.mean, obj.F.mean
        return {"J&F": (j + f) / 2.0, "J": j, "F": f}[measure]

    labels = [_object_label(n, year) for n in names]
    series = {
        r.label: [100.0 * column(objects, n, "J&F") for n in names]
        for r, objects in zip(result_sets, by_set, strict=True)
    }
    report.heading(f"J&F per {kind}")
    report.figure(
        bar_chart(labels, series, xlabel="J&F ×100", title=f"J&F per {kind}", xlim=(0, 100))
    )
    columns = [kind.capitalize()]
    for r in result_sets:
        columns += [f"{r.label} J&F", f"{r.label} J", f"{r.label} F"]
    rows = [
        [label, *(column(objects, n, m) for objects in by_set for m in ("J&F", "J", "F"))]
        for label, n in zip(labels, names, strict=True)
    ]
    report.table(columns, rows, number=_percent, table_id="per-object")


def _over_time(report: Report, result_sets: Sequence[ResultSet], sequences: list[str]) -> None:
    report.heading("J and F over time, worst sequences")
    for sequence in sequences:
        panels: list[tuple[str, dict[str, np.ndarray]]] = [("J", {}), ("F", {})]
        frames: tuple[str, ...] = ()
        for r in result_sets:
            scores = {s.sequence: s for s in r.evaluation.sequences}.get(sequence)
            if scores is None:
                continue
            frames = scores.frames
            for k in range(scores.J.shape[0]):
                line = r.label if scores.J.shape[0] == 1 else f"{r.label} · object {k + 1}"
                panels[0][1][line] = scores.J[k]
                panels[1][1][line] = scores.F[k]
        stems = [Path(name).stem for name in frames]
        numbered = all(stem.isdigit() for stem in stems)  # DAVIS names frames 00000, 00001, ...
        figure = line_chart(
            panels,
            xlabel="frame" if numbered else "scored frame (index)",
            title=sequence,
            x=[int(stem) for stem in stems] if numbered else None,
            ylim=(0.0, 1.02),
        )
        report.figure(figure, f"{sequence}: J and F per scored frame")


def _strips(
    report: Report,
    result_sets: Sequence[ResultSet],
    dataset: DavisDataset,
    best: list[str],
    worst: list[str],
    count: int,
) -> None:
    report.heading("Overlays, best and worst sequences")
    scores = {s.sequence: _sequence_jf(s) for s in result_sets[0].evaluation.sequences}
    for rank, sequences in (("best", best), ("worst", worst)):
        for sequence in sequences:
            figure, names = _strip(result_sets, dataset, sequence, count)
            caption = (
                f"{sequence} ({rank}; J&F {_percent(scores[sequence])} for "
                f"{result_sets[0].label}): frames {', '.join(names)}; prompt points as dots"
            )
            report.figure(figure, caption)


def _strip(
    result_sets: Sequence[ResultSet], dataset: DavisDataset, sequence: str, count: int
) -> tuple[Figure, list[str]]:
    """The overlay grid of ``sequence`` (rows: result sets) and its frame names."""
    frame_paths = dataset.frame_paths(sequence)
    present = [
        p
        for p in frame_paths
        if all((r.results_dir / sequence / f"{p.stem}.png").is_file() for r in result_sets)
    ]
    picks = np.unique(np.linspace(0, len(present) - 1, min(count, len(present))).round())
    chosen = [present[int(i)] for i in picks]
    rows = []
    for r in result_sets:
        log = r.prompts_dir / f"{sequence}.jsonl" if r.prompts_dir is not None else None
        points = read_prompt_points(log) if log is not None and log.is_file() else {}
        rows.append([_tile(p, r, sequence, points.get(p.stem, {}), dataset.year) for p in chosen])
    names = [p.stem for p in chosen]
    figure = image_grid(
        rows, row_labels=[r.label for r in result_sets], column_labels=names, title=sequence
    )
    return figure, names


def _tile(
    frame_path: Path,
    result_set: ResultSet,
    sequence: str,
    points: Mapping[int, np.ndarray],
    year: str,
) -> np.ndarray:
    """One overlay tile, ``TILE_PX`` wide: the frame, the result mask, the prompt points."""
    import cv2

    rgb = read_image(frame_path)
    ids = read_ids(result_set.results_dir / sequence / f"{frame_path.stem}.png")
    if year == "2016":
        ids = (ids > 0).astype(np.uint8)
    scale = TILE_PX / rgb.shape[1]
    size = (TILE_PX, max(1, round(rgb.shape[0] * scale)))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ids = cv2.resize(ids, size, interpolation=cv2.INTER_NEAREST)
    scaled = {k: np.asarray(xy, dtype=np.float64) * scale for k, xy in points.items()}
    return overlay(rgb, ids, alpha=0.5, outline=OUTLINE_PX, points=scaled, point_radius=POINT_PX)
