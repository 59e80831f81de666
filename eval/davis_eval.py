"""Score a folder of DAVIS results (semi-supervised task) as the official toolkit does.

``RESULTS_DIR/<sequence>/<frame>.png`` holds the result masks (indexed PNGs, ids 1..K of
the sequence's first ground-truth frame; any mask :func:`samic_vos.data.mask_io.read_mask`
accepts). Every annotated frame except the first and the last is scored; each PNG is read
once; sequences are scored in parallel processes (small sets in this one). Numbers equal the
toolkit's (``davis2017-evaluation``), except Decay from 256 scored frames on, where the
toolkit's is wrong (see :func:`samic_vos.eval.davis_metrics.statistics`).

Unlike the toolkit, bad input stops with a :class:`UserError` naming the file (the toolkit
exits with status 0), and CSV files already in the results folder are never read back.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samic_vos.data.davis import DavisDataset, DavisSelection
from samic_vos.data.indexed_png import read_ids
from samic_vos.eval.davis_metrics import Statistics, boundary_radius, frame_scores, statistics
from samic_vos.runtime import console
from samic_vos.runtime.atomic import atomic_write_text
from samic_vos.runtime.config import require
from samic_vos.runtime.errors import UserError, size_text
from samic_vos.runtime.heap import keep_freed_memory

GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")
# The progress bar shows when stderr is a terminal, or in logs for runs this long (frames).
LONG_RUN_FRAMES = 3000
# Sets of fewer scored frames are scored in this process, where starting worker processes costs
# more than it saves (a 480p frame takes ~1 ms): ~15 ms for two forked workers, about a second
# (more on a loaded machine) for workers started from a fresh interpreter (forkserver, spawn).
IN_PROCESS_FRAMES = 300
IN_PROCESS_FRAMES_FORKED = 50


@dataclass
class DavisEvalConfig:
    """Everything `samic-vos eval davis` can be told (defaults; YAML and flags override)."""

    davis: DavisSelection = field(default_factory=DavisSelection)
    workers: int | None = None  # scoring processes (None: one per CPU, at most one per sequence)

    def __post_init__(self) -> None:
        ok = self.workers is None or self.workers >= 1
        require(ok, "workers", "an integer >= 1 or null", self.workers)


@dataclass(frozen=True)
class SequenceScores:
    """Per-frame scores of one sequence.

    ``frames``: names of the scored annotation files (``"00001.png"``, ...), in order.
    ``J``, ``F``: ``float64`` arrays of shape ``(num_objects, len(frames))``; row ``k`` is
    object ``k + 1``.
    """

    sequence: str
    frames: tuple[str, ...]
    J: np.ndarray
    F: np.ndarray


@dataclass(frozen=True)
class ObjectScores:
    """Statistics of one object over its sequence; ``name`` is ``"<sequence>_<id>"``."""

    name: str
    J: Statistics
    F: Statistics


@dataclass(frozen=True)
class DavisEvaluation:
    """Everything the evaluation found: per frame, per object and global."""

    split: str
    sequences: tuple[SequenceScores, ...]
    objects: tuple[ObjectScores, ...]
    global_scores: dict[str, float]  # keys: GLOBAL_COLUMNS

    def to_json(self) -> dict:
        """``{"global": {...}, "per_object": {"<seq>_<id>": {"J": mean, "F": mean}}}``."""
        return {
            "global": dict(self.global_scores),
            "per_object": {o.name: {"J": o.J.mean, "F": o.F.mean} for o in self.objects},
        }


def _scored_frames(dataset: DavisDataset, sequence: str) -> list[Path]:
    paths = dataset.annotation_paths(sequence)
    if len(paths) < 3:
        raise UserError(
            f"{dataset.annotation_dir / sequence}: {len(paths)} annotated frame(s); the first "
            "and last are not scored, so a sequence needs at least 3"
        )
    return paths[1:-1]


def check_scorable(dataset: DavisDataset, sequences: Sequence[str]) -> None:
    """Raise :class:`UserError` for a sequence the scoring would refuse (under 3 annotated
    frames): jobs that track a set check this before any work."""
    for sequence in sequences:
        _scored_frames(dataset, sequence)


def check_results(results_dir: Path, dataset: DavisDataset, sequences: Sequence[str]) -> None:
    """Raise :class:`UserError` for a missing results folder, sequence folder or frame."""
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: results folder not found")
    for sequence in sequences:
        folder = results_dir / sequence
        if not folder.is_dir():
            raise UserError(
                f"{folder}: no results for sequence '{sequence}'; the results folder needs "
                "one folder of PNG masks per sequence"
            )
        present = set(os.listdir(folder))
        missing = [p.name for p in _scored_frames(dataset, sequence) if p.name not in present]
        if missing:
            more = f" (and {len(missing) - 1} more in {sequence})" if len(missing) > 1 else ""
            raise UserError(
                f"{folder / missing[0]}: result frame missing{more}; write one PNG per "
                "annotated frame, named like the ground truth (the first and last are not scored)"
            )


def _read_result(
    path: Path, gt_path: Path, shape: tuple[int, int], num_objects: int, year: str
) -> np.ndarray:
    """A result's id map (``uint8``, ``shape``), binarised for DAVIS-2016, validated."""
    ids = read_ids(path)
    if ids.shape != shape:
        raise UserError(
            f"{path}: result is {size_text(ids.shape)} px but the ground truth "
            f"{gt_path.name} is {size_text(shape)}; write results at the annotation size"
        )
    if year == "2016":
        return (ids > 0).view(np.uint8)
    top = int(ids.max())
    if top > num_objects:
        raise UserError(
            f"{path}: object id {top} but the sequence has {num_objects} object(s) in its first "
            f"ground-truth frame; use ids 1..{num_objects} (0 = background)"
        )
    return ids


def score_sequence(dataset: DavisDataset, results_dir: Path, sequence: str) -> SequenceScores:
    """Per-frame J and F of every object of ``sequence`` (results must exist: see
    :func:`check_results`)."""
    num_objects = dataset.num_objects(sequence)
    scored = _scored_frames(dataset, sequence)
    j = np.empty((num_objects, len(scored)))
    f = np.empty((num_objects, len(scored)))
    for column, gt_path in enumerate(scored, start=1):
        gt = dataset.read_annotation(sequence, column)
        path = results_dir / sequence / gt_path.name
        res = _read_result(path, gt_path, gt.shape, num_objects, dataset.year)
        radius = boundary_radius(gt.shape)
        j[:, column - 1], f[:, column - 1] = frame_scores(gt, res, num_objects, radius)
    return SequenceScores(sequence, tuple(p.name for p in scored), j, f)


def _cpu_count() -> int:
    """CPUs this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pool_context() -> multiprocessing.context.BaseContext:
    """The platform's default start method (fork on Linux: the fastest start), but forkserver
    once torch is loaded here: a child forked while torch's thread pools hold a lock can wait
    on it forever (seen when `track` and `eval` run in one process)."""
    if "torch" in sys.modules and "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context()


def _worker_init() -> None:
    # The parent handles Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()


def _score_all(
    dataset: DavisDataset,
    results_dir: Path,
    sequences: list[str],
    workers: int,
    advance: Callable[[int], object],
) -> dict[str, SequenceScores]:
    """Score ``sequences`` in ``workers`` processes, longest first (or, for a small set
    (:data:`IN_PROCESS_FRAMES`), here, in order); calls ``advance(frames)`` as sequences are
    done."""
    sizes = {s: len(dataset.annotation_paths(s)) - 2 for s in sequences}
    context = _pool_context()
    forked = context.get_start_method() == "fork"
    small = IN_PROCESS_FRAMES_FORKED if forked else IN_PROCESS_FRAMES
    if sum(sizes.values()) < small:
        scores = {}
        for name in sequences:
            scores[name] = score_sequence(dataset, results_dir, name)
            advance(sizes[name])
        return scores
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init)
    try:
        futures = {
            pool.submit(score_sequence, dataset, results_dir, s): s
            for s in sorted(sequences, key=sizes.__getitem__, reverse=True)
        }
        pending, scores = set(futures), {}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                scores[futures[future]] = future.result()  # re-raises a worker's UserError
                advance(sizes[futures[future]])
        return scores
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def evaluate_davis(
    results_dir: str | os.PathLike[str],
    dataset: DavisDataset,
    sequences: Sequence[str] | None = None,
    workers: int | None = None,
    progress: bool | None = None,
    scored: Mapping[str, SequenceScores] | None = None,
) -> DavisEvaluation:
    """Score ``results_dir`` against ``dataset`` (all its sequences, or ``sequences``).

    ``scored``: sequences already scored (by :func:`score_sequence` on these results), taken as
    they are.

    ``workers``: worker processes (default: one per CPU, at most one per sequence); the
    scoring runs in workers, whose memory settings are tuned, except for small sets
    (:data:`IN_PROCESS_FRAMES`), scored in this process by the same code. ``progress``:
    a progress bar on stderr (default: when stderr is a terminal or the run is long).
    """
    results_dir = Path(results_dir)
    names = list(dataset.sequences if sequences is None else dict.fromkeys(sequences))
    for name in names:
        dataset.annotation_paths(name)  # unknown sequence → UserError
    check_results(results_dir, dataset, names)
    done = {name: scored[name] for name in names if scored and name in scored}
    todo = [name for name in names if name not in done]
    total = sum(len(dataset.annotation_paths(s)) - 2 for s in todo)
    workers = max(1, min(workers or _cpu_count(), len(todo)))
    tty = sys.stderr.isatty()
    show = (tty or total >= LONG_RUN_FRAMES) if progress is None else progress
    if show:
        with console.bar(
            total=total, unit="frame", desc="DAVIS J&F", mininterval=0.1 if tty else 10.0
        ) as bar:
            fresh = _score_all(dataset, results_dir, todo, workers, bar.update)
    else:  # no bar: tqdm is not even imported (`eval davis --json` starts faster)
        fresh = _score_all(dataset, results_dir, todo, workers, lambda frames: None)
    by_name = {**done, **fresh}
    scores = tuple(by_name[name] for name in names)
    objects = tuple(
        ObjectScores(f"{s.sequence}_{k + 1}", statistics(s.J[k]), statistics(s.F[k]))
        for s in scores
        for k in range(s.J.shape[0])
    )
    if not objects:
        raise UserError("nothing to score: the first annotations of these sequences hold no object")
    j_mean = float(np.mean([o.J.mean for o in objects]))
    f_mean = float(np.mean([o.F.mean for o in objects]))
    values = (
        (j_mean + f_mean) / 2.0,
        j_mean,
        float(np.mean([o.J.recall for o in objects])),
        float(np.mean([o.J.decay for o in objects])),
        f_mean,
        float(np.mean([o.F.recall for o in objects])),
        float(np.mean([o.F.decay for o in objects])),
    )
    return DavisEvaluation(
        dataset.split, scores, objects, dict(zip(GLOBAL_COLUMNS, values, strict=True))
    )


def _csv(rows: list[list[str]]) -> str:
    return "".join(",".join(row) + "\n" for row in rows)


def write_csvs(evaluation: DavisEvaluation, csv_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv``.

    The toolkit's columns and number format (3 decimals); written atomically. Returns the
    two paths.
    """
    csv_dir = Path(csv_dir)
    csv_dir.mkdir(parents=True, exist_ok=True)
    global_path = csv_dir / f"global_results-{evaluation.split}.csv"
    sequence_path = csv_dir / f"per-sequence_results-{evaluation.split}.csv"
    values = [f"{evaluation.global_scores[c]:.3f}" for c in GLOBAL_COLUMNS]
    atomic_write_text(global_path, _csv([list(GLOBAL_COLUMNS), values]))
    rows = [[o.name, f"{o.J.mean:.3f}", f"{o.F.mean:.3f}"] for o in evaluation.objects]
    atomic_write_text(sequence_path, _csv([list(SEQUENCE_COLUMNS), *rows]))
    return global_path, sequence_path
