"""The few-shot benchmark's HTML report: scores beside published figures, per-class IoU, examples.

:func:`fewshot_report` turns a scored ``bench fewshot`` run (its ``scores.json`` content and its
``OUT/pred``, ``OUT/prompts``) into a :class:`~samic_vos.reports.html.Report`, from the same pieces
as the DAVIS report (:mod:`samic_vos.reports.davis_report`):

- the global table (mIoU, and FB-IoU where the protocol has it, ×100), this run first, then
  the published 1-shot figures (greyed);
- images per second and seconds per stage;
- the IoU of every class, as bars (best first) and as a table;
- for the best and the worst classes, the episode of the class with the highest (best) or
  lowest (worst) IoU: reference (support 1 and its mask), target (query and its ground truth)
  and prediction (the predicted mask and the prompt points) side by side;
- the configuration (YAML text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samic_vos.data.davis import read_image
from samic_vos.data.fewshot_episodes import Episode
from samic_vos.data.fewshot_sets import FewShotDataset
from samic_vos.data.mask_io import VOID_ID, read_mask
from samic_vos.eval.fewshot_eval import prediction_path
from samic_vos.eval.fewshot_metrics import foreground_areas
from samic_vos.reports.html import Report, bar_chart, image_grid
from samic_vos.reports.render import overlay

# Example tiles are fitted into TILE_PX x TILE_PX (letterboxed in white); prompt points are
# drawn as discs of POINT_PX pixels.
TILE_PX, POINT_PX = 200, 4
COLUMNS = ("reference", "target (ground truth)", "prediction")
DATASET_NAMES = {
    "fss1000": "FSS-1000",
    "perseg": "PerSeg",
    "folder": "folder",
    "sambox": "SAMBOX",
    "pascal5i": "PASCAL-5i",
    "coco20i": "COCO-20i",
    "kvasir": "Kvasir-SEG",
    "nwpu-vhr10": "NWPU VHR-10",
    "labelme": "LabelMe",
}


def _percent(value: float) -> str:
    return f"{value:.1f}"


def dataset_title(scores: Mapping[str, Any]) -> str:
    """``"FSS-1000 test, 1-shot"``, ``"PASCAL-5i fold 0, 5-shot"`` (FSS-1000's split, the
    fold of a set tested by folds)."""
    name = DATASET_NAMES.get(scores["dataset"], scores["dataset"])
    split = f" {scores['split']}" if scores.get("split") else ""
    fold = f" fold {scores['fold']}" if scores.get("fold") is not None else ""
    return f"{name}{split}{fold}, {scores['shots']}-shot"


def run_label(scores: Mapping[str, Any]) -> str:
    """This run's row label: ``"ours (samic, SAM vit_h)"``."""
    segment = (scores.get("config") or {}).get("segment") or {}
    return f"ours ({segment.get('prompter', '?')}, SAM {segment.get('sam_model', '?')})"


def fewshot_report(
    scores: Mapping[str, Any],
    dataset: FewShotDataset,
    episodes: Sequence[Episode],
    out_dir: Path,
    *,
    config_yaml: str | None = None,
    ranked: int = 3,
) -> Report:
    """The report of the run in ``out_dir`` whose scores are ``scores`` (see the module docs).

    ``ranked``: how many best (and worst) classes get an example row.
    """
    report = Report(f"samic-vos bench fewshot: {dataset_title(scores)}")
    report.paragraph(
        f"{scores['classes']} classes, {scores['episodes']} episodes (a query and its "
        "supports, drawn from the same class). Scores ×100."
    )
    _scores_table(report, scores)
    per_class: dict[str, float] = dict(scores["per_class"])
    order = sorted(per_class, key=lambda name: per_class[name], reverse=True)
    report.heading("IoU per class")
    report.figure(
        bar_chart(
            order,
            {run_label(scores): [per_class[n] for n in order]},
            xlabel="IoU ×100",
            title="IoU per class (best first)",
            xlim=(0, 100),
        )
    )
    report.table(
        ["Class", "IoU"], [[n, per_class[n]] for n in order], number=_percent, table_id="per-class"
    )
    # Examples of the classes that had episodes (`--episode-count` may leave some without).
    shown = [n for n in order if any(e.class_name == n for e in episodes)]
    best = shown[: min(ranked, (len(shown) + 1) // 2)]
    worst = shown[::-1][: min(ranked, len(shown) // 2)]
    report.heading("Examples, best and worst classes")
    for rank, names in (("best", best), ("worst", worst)):
        if names:
            _examples(report, rank, names, per_class, dataset, episodes, out_dir)
    if config_yaml is not None:
        report.heading("Configuration")
        report.preformatted(config_yaml)
    return report


def _scores_table(report: Report, scores: Mapping[str, Any]) -> None:
    report.heading("Scores")
    columns = list(scores["global"])
    rows: list[list[str | float | None]] = [
        [run_label(scores), *(scores["global"][c] for c in columns)]
    ]
    published: dict[str, float | None] = scores.get("published") or {}
    for method, value in published.items():
        rows.append([f"{method}, 1-shot", value, *([None] * (len(columns) - 1))])
    report.table(
        ["Method", *columns],
        rows,
        number=_percent,
        secondary=[False] + [True] * len(published),
        caption="Measured here (top); published 1-shot mIoU (grey, as quoted in the papers)."
        if published
        else None,
        table_id="scores",
    )
    if scores.get("ips"):
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in scores["seconds"].items())
        report.paragraph(
            f"{scores['images']} images segmented at {scores['ips']:.2f} images/s; {stages}."
        )


def episode_iou(out_dir: Path, dataset: FewShotDataset, episode: Episode) -> float:
    """Foreground IoU ×100 of one episode's prediction at its own size (100 when both empty)."""
    ids = read_mask(prediction_path(out_dir / "pred", episode))
    inter, union = foreground_areas((ids > 0) & (ids != VOID_ID), dataset.read_mask(episode.query))
    return 100.0 * inter / union if union else 100.0


def _examples(
    report: Report,
    rank: str,
    names: list[str],
    per_class: Mapping[str, float],
    dataset: FewShotDataset,
    episodes: Sequence[Episode],
    out_dir: Path,
) -> None:
    rows, labels, notes = [], [], []
    for name in names:
        scored = [(episode_iou(out_dir, dataset, e), e) for e in episodes if e.class_name == name]
        pick = max if rank == "best" else min
        iou, episode = pick(scored, key=lambda pair: pair[0])
        rows.append(_row(out_dir, dataset, episode))
        labels.append(name)
        notes.append(
            f"{name}: class IoU {per_class[name]:.1f}, query {episode.query.name} "
            f"(IoU {iou:.1f}), supports {', '.join(s.name for s in episode.supports)}"
        )
    figure = image_grid(
        rows, row_labels=labels, column_labels=list(COLUMNS), title=f"{rank} classes"
    )
    report.figure(figure, f"{rank.capitalize()} classes. " + "; ".join(notes) + ".")


def _row(out_dir: Path, dataset: FewShotDataset, episode: Episode) -> list[np.ndarray]:
    """Reference, target and prediction tiles of ``episode``, each ``TILE_PX`` square."""
    support = episode.supports[0]
    ref_rgb, ref_mask = dataset.load(support)
    rgb = read_image(episode.query.image, upright=dataset.upright)
    truth = dataset.read_mask(episode.query).astype(np.uint8)
    predicted = read_mask(prediction_path(out_dir / "pred", episode))
    record_path = out_dir / "prompts" / episode.class_name / f"{episode.name}.json"
    classes = json.loads(record_path.read_text())["classes"] if record_path.is_file() else {}
    points = {int(k): np.asarray(v["points"], dtype=np.float64) for k, v in classes.items()}
    return [
        _tile(ref_rgb, ref_mask.astype(np.uint8), {}),
        _tile(rgb, truth, {}),
        _tile(rgb, predicted, points),
    ]


def _tile(rgb: np.ndarray, ids: np.ndarray, points: Mapping[int, np.ndarray]) -> np.ndarray:
    """``rgb`` with ``ids`` and ``points`` (x, y pixels) drawn, fitted into a white square."""
    import cv2

    height, width = rgb.shape[:2]
    scale = TILE_PX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small_ids = cv2.resize(ids, size, interpolation=cv2.INTER_NEAREST)
    scaled = {k: xy.reshape(-1, 2) * scale for k, xy in points.items()}
    drawn = overlay(small, small_ids, alpha=0.5, outline=1, points=scaled, point_radius=POINT_PX)
    tile = np.full((TILE_PX, TILE_PX, 3), 255, dtype=np.uint8)
    top, left = (TILE_PX - size[1]) // 2, (TILE_PX - size[0]) // 2
    tile[top : top + size[1], left : left + size[0]] = drawn
    return tile


def write_fewshot_report(
    out_dir: Path, dataset: FewShotDataset, episodes: Sequence[Episode], scores: Mapping[str, Any]
) -> Path:
    """``out_dir/report.html`` of the scored run in ``out_dir``; returns its path."""
    import yaml

    config = scores.get("config")
    text = yaml.safe_dump(config, sort_keys=False) if config else None
    report = fewshot_report(scores, dataset, episodes, out_dir, config_yaml=text)
    return report.write(out_dir / "report.html")
