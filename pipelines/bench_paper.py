"""`samic-vos bench paper`: every column of SAMIC's Table 1 whose data is present, in one table.

The nine columns (:data:`COLUMNS`, the order of :data:`samic_vos.eval.published.COLUMNS`) are
looked for under one root (``ROOT``, the folder `samic-vos data download --root ROOT` fills):
COCO-20i (``ROOT/COCO2014``) and Pascal-5i (``ROOT/VOC2012``, with ``SegmentationClassAug``) as
4 fold runs each, FSS-1000, PerSeg, TSMU (``ROOT/TSMU``, its LabelMe export), NWPU VHR-10 and
Kvasir-SEG as one `bench fewshot` run each, DAVIS-16 and DAVIS-17 val as one `bench davis`
run each. A column whose folder is absent is "no data". Every present dataset is opened before
any work, so a broken layout is refused before anything runs.

Each run is the benchmark's own command (``execute``: the CLI's, given by the caller, since
pipelines never import each other) writing ``OUT/<column>[/fold<F>]`` with ``--report``; it
resumes itself. The runs are this process's share (:mod:`samic_vos.runtime.shards`: ``--shard
I/N``, torchrun, a Slurm array; balanced by frames or episodes); the process that finds every
run finished (or ``merge``) writes ``OUT/table1.md``, ``OUT/scores.json`` and
``OUT/report.html``: our row beside the published rows (:mod:`samic_vos.eval.published`), the
absent columns marked, each column linking to its run's report.

``train``: each DAVIS run trains SAMIC on its own train set first (`bench davis --train`); the
few-shot columns share one network trained on FSS-1000's training classes
(``OUT/train-fss1000/best.pt``, `samic-vos train --fewshot fss1000`), trained once before the
shards run, as `bench davis --train` does. ``train_config``: a `samic-vos train` YAML
(overrides of :class:`~samic_vos.training.job.TrainJobConfig`, whose defaults are the paper's
settings) for every network trained: given to `train --fewshot` as it is, and to each `bench
davis --train` as the ``train`` section of ``OUT/train-config-davis.yaml``. ``download``: the
datasets with official archives are downloaded and prepared under ROOT first (`data
download`, `data prepare`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from samic_vos.data.davis import DavisSelection
from samic_vos.data.fewshot_episodes import (
    EpisodeConfig,
    FewShotSelection,
    protocol_episodes,
)
from samic_vos.data.fold_sets import FOLDS
from samic_vos.eval.fewshot_folds import combine_folds
from samic_vos.eval.published import published
from samic_vos.inference.names import IMAGE_PROMPTERS
from samic_vos.runtime.atomic import atomic_write_text
from samic_vos.runtime.config import apply_overrides, read_yaml_overrides, require_choice
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_dir, removing_new_folders
from samic_vos.runtime.runs import RunManifest, fingerprint, open_run, read_manifest, write_manifest
from samic_vos.runtime.shards import resolve_shard
from samic_vos.sam.names import SAM_MODELS

log = logging.getLogger(__name__)

NO_DATA = "no data"
TRAIN_DIR = "train-fss1000"
DAVIS_TRAIN_CONFIG = "train-config-davis.yaml"  # `bench davis --config`: {train: the overrides}
# What `download` fetches into ROOT, then what it prepares there (`samic-vos data`).
DOWNLOADS = (
    "davis-2016-trainval-480p",
    "davis-2017-trainval-480p",
    "voc2012",
    "sbd",
    "coco2014-val",
    "coco2014-annotations",
    "kvasir-seg",
)
PREPARES = ("pascal5i", "coco20i")


@dataclass(frozen=True)
class Column:
    """One column of Table 1: where its data is and which benchmark runs it.

    ``key``: its key in :mod:`samic_vos.eval.published`; ``bench``: ``"davis"`` or
    ``"fewshot"``; ``dataset``: the DAVIS year or `bench fewshot`'s ``--dataset``; ``folders``:
    its folder under ROOT (the first that exists); ``folds``: tested fold by fold.
    """

    key: str
    title: str
    bench: str
    dataset: str
    folders: tuple[str, ...]
    folds: bool = False

    @property
    def metric(self) -> str:
        return "J&F-Mean" if self.bench == "davis" else "mIoU"


COLUMNS = (
    Column("coco20i", "COCO-20i", "fewshot", "coco20i", ("COCO2014",), True),
    Column("pascal5i", "Pascal-5i", "fewshot", "pascal5i", ("VOC2012",), True),
    Column("fss1000", "FSS-1000", "fewshot", "fss1000", ("FSS-1000",)),
    Column("perseg", "PerSeg", "fewshot", "perseg", ("PerSeg",)),
    Column("tsmu", "TSMU landslide", "fewshot", "labelme", ("TSMU",)),
    Column("nwpu-vhr10", "NWPU VHR-10", "fewshot", "nwpu-vhr10", ("NWPU-VHR-10",)),
    Column("kvasir", "Kvasir-SEG", "fewshot", "kvasir", ("Kvasir-SEG",)),
    Column("davis2016", "DAVIS-16", "davis", "2016", ("davis-2016-trainval-480p", "DAVIS-2016")),
    Column("davis2017", "DAVIS-17", "davis", "2017", ("davis-2017-trainval-480p", "DAVIS-2017")),
)
OUTPUTS = (
    *(c.key for c in COLUMNS),
    TRAIN_DIR,
    DAVIS_TRAIN_CONFIG,
    "table1.md",
    "scores.json",
    "report.html",
)


@dataclass(frozen=True)
class PaperRun:
    """One benchmark run of a column (one fold of a fold column): ``OUT/<name>``."""

    column: Column
    root: Path
    fold: int | None
    weight: int  # frames or episodes, to balance shards

    @property
    def name(self) -> str:
        return self.column.key if self.fold is None else f"{self.column.key}/fold{self.fold}"


@dataclass
class BenchPaperInputs:
    """Paths and switches given on the command line (models as `bench davis` takes them)."""

    root: Path
    out_dir: Path
    prompter: str = "samic"
    samic_checkpoint: Path | None = None
    train: bool = False
    train_config: Path | None = None  # with ``train``: `samic-vos train` YAML overrides
    sam_model: str | None = None
    sam_checkpoint: Path | None = None
    backbone_weights: Path | None = None
    device: str | None = None
    episode_count: int | None = None  # only the first N episodes of each few-shot run
    download: bool = False
    shard: str | None = None
    merge: bool = False
    force: bool = False


@dataclass
class BenchPaperResult:
    """What the run did; ``scores`` is ``None`` until every run of the table is finished."""

    runs: list[str]  # this process's share
    remaining: list[str]
    scores: dict[str, Any] | None = None


Execute = Callable[[list[str]], None]  # runs one `samic-vos` command; raises UserError


def find_columns(root: Path) -> dict[str, Path | str]:
    """Each column's folder under ``root``, or :data:`NO_DATA` where it has none."""
    found: dict[str, Path | str] = {}
    for column in COLUMNS:
        folder = next((root / f for f in column.folders if (root / f).is_dir()), None)
        found[column.key] = NO_DATA if folder is None else folder
    return found


def plan_runs(root: Path, episode_count: int | None = None) -> list[PaperRun]:
    """The runs of every present column, each dataset opened (a broken layout is a
    :class:`UserError` here, before any work)."""
    runs = []
    found = find_columns(root)
    for column in COLUMNS:
        folder = found[column.key]
        if not isinstance(folder, Path):
            continue
        if column.bench == "davis":
            dataset = DavisSelection(year=column.dataset).open(folder)
            frames = sum(len(dataset.frame_paths(n)) for n in dataset.sequences)
            runs.append(PaperRun(column, folder, None, frames))
            continue
        for fold in FOLDS if column.folds else (None,):
            selection = FewShotSelection(kind=column.dataset, fold=0 if fold is None else fold)
            episodes = protocol_episodes(selection.open(folder), EpisodeConfig(count=episode_count))
            runs.append(PaperRun(column, folder, fold, len(episodes)))
    return runs


def run_bench_paper(inputs: BenchPaperInputs, execute: Execute) -> BenchPaperResult:
    """Run this process's share of the table's runs; write the table once all are finished."""
    if inputs.prompter not in IMAGE_PROMPTERS:  # every column runs an image prompter
        raise UserError(
            f"prompter {inputs.prompter}: bench paper runs {' or '.join(IMAGE_PROMPTERS)}"
        )
    if inputs.train and inputs.samic_checkpoint is not None:
        raise UserError("`samic_checkpoint` and --train exclude each other: use one network")
    if inputs.prompter != "samic" and (inputs.train or inputs.samic_checkpoint is not None):
        raise UserError(f"{inputs.prompter} needs no network: drop --train and `samic_checkpoint`")
    if inputs.sam_model is not None:  # before any run (the CLI names `sam_model` as its flag)
        require_choice("`sam_model`", inputs.sam_model, SAM_MODELS)
    train_overrides = _train_overrides(inputs)
    out = inputs.out_dir
    check_writable_dir(out)
    if inputs.download and not inputs.merge:
        _download(inputs.root)
    if not inputs.root.is_dir():
        raise UserError(f"{inputs.root}: folder not found; pass the datasets' `root`")
    runs = plan_runs(inputs.root, inputs.episode_count)
    if not runs:
        raise UserError(
            f"{inputs.root}: holds none of the table's datasets ("
            + ", ".join(f"{c.title}: {'/'.join(c.folders)}" for c in COLUMNS)
            + "); see docs/fewshot_datasets.md, or pass --download"
        )
    shard = resolve_shard(inputs.shard)
    manifest = _manifest(inputs)
    if inputs.merge:
        return _merge(out, runs, manifest)
    fewshot = [r for r in runs if r.column.bench == "fewshot"]
    network = _fewshot_network(inputs, fewshot, shard.count)
    state = open_run(out, manifest, force=inputs.force, outputs=OUTPUTS, shards=shard.count)
    mine = shard.take([(r.name, r.weight) for r in runs])
    with removing_new_folders(out):
        if state != "finished":
            out.mkdir(parents=True, exist_ok=True)
            write_manifest(out, manifest)
        if train_overrides is not None and any(r.column.bench == "davis" for r in runs):
            text = yaml.safe_dump({"train": train_overrides}, sort_keys=False)
            atomic_write_text(out / DAVIS_TRAIN_CONFIG, text)
        if network is not None and inputs.train and fewshot:
            _train_fewshot(inputs, execute, out)
        for run in runs:
            if run.name in mine and not _finished(out / run.name):
                log.info("bench paper: %s (%s)", run.name, run.root)
                execute(_argv(run, inputs, network, shard.local_rank))
    remaining = [r.name for r in runs if not _finished(out / r.name)]
    result = BenchPaperResult(mine, remaining)
    if not remaining:
        result.scores = write_table(out, runs, inputs.root)
        manifest.finished = True
        write_manifest(out, manifest)
    return result


def _train_overrides(inputs: BenchPaperInputs) -> dict[str, Any] | None:
    """The overrides of ``inputs.train_config`` (checked against `samic-vos train`'s keys
    before any work; ``None`` without one)."""
    if inputs.train_config is None:
        return None
    if not inputs.train:
        raise UserError("--train-config sets how --train trains: add --train, or drop it")
    from samic_vos.training.job import TrainJobConfig  # torch: only with a train config

    overrides = read_yaml_overrides(inputs.train_config)
    apply_overrides(TrainJobConfig(), overrides, str(inputs.train_config))  # bad keys: one line
    return overrides


def _manifest(inputs: BenchPaperInputs) -> RunManifest:
    """The same for every shard: the root, the models and the settings (not the device)."""
    settings = {k: v for k, v in asdict(inputs).items() if k in ("prompter", "train", "sam_model")}
    settings["episode_count"] = inputs.episode_count
    return RunManifest(
        command="bench-paper",
        inputs={
            "root": str(inputs.root.resolve()),
            "samic": fingerprint(inputs.samic_checkpoint),
            "sam": fingerprint(inputs.sam_checkpoint),
            "backbone_weights": fingerprint(inputs.backbone_weights),
            # only when given: the runs of earlier versions, without the key, still resume
            **({"train_config": fingerprint(inputs.train_config)} if inputs.train_config else {}),
        },
        config=settings,
    )


def _download(root: Path) -> None:
    from samic_vos.hub.datasets import ensure_dataset
    from samic_vos.hub.prepare import prepare_dataset

    for name in DOWNLOADS:
        log.info("%s: %s", name, ensure_dataset(name, root))
    for name in PREPARES:
        prepare_dataset(name, root)


def _fewshot_network(inputs: BenchPaperInputs, fewshot: list[PaperRun], shards: int) -> Path | None:
    """The network of the few-shot runs (``None``: persam, or none to run); checked before
    any work."""
    if not fewshot or inputs.prompter != "samic":
        return None
    if inputs.samic_checkpoint is not None:
        return inputs.samic_checkpoint
    trained = inputs.out_dir / TRAIN_DIR / "best.pt"
    if not inputs.train:
        raise UserError(
            "the few-shot columns need a trained SAMIC network: pass `samic_checkpoint`, or "
            "--train (on FSS-1000's training classes), or --prompter persam"
        )
    if not (inputs.root / "FSS-1000").is_dir():
        raise UserError(
            f"--train trains the few-shot network on FSS-1000: put it in {inputs.root}/FSS-1000 "
            "(docs/fewshot_datasets.md), or pass `samic_checkpoint`"
        )
    if shards > 1 and not _trained(trained.parent):
        raise UserError(
            "training runs once, not per shard: run bench paper with --train in one process "
            f"first (it trains {trained}), then launch the shards"
        )
    return trained


def _trained(folder: Path) -> bool:
    """Whether ``folder`` holds a finished training: its best.pt is there from the first
    epoch on, so an interrupted training has one too."""
    manifest = read_manifest(folder)
    return manifest is not None and manifest.finished and (folder / "best.pt").is_file()


def _train_fewshot(inputs: BenchPaperInputs, execute: Execute, out: Path) -> None:
    folder = out / TRAIN_DIR
    if _trained(folder):
        return
    argv = ["train", "--fewshot", "fss1000", "--root", str(inputs.root / "FSS-1000")]
    argv += ["-o", str(folder), *_model_flags(inputs, None, sam=False)]
    if inputs.train_config is not None:
        argv += ["--config", str(inputs.train_config)]
    if (folder / "latest.pt").is_file():
        argv.append("--resume")
    log.info("bench paper: training the few-shot network on FSS-1000 into %s", folder)
    execute(argv)


def _model_flags(
    inputs: BenchPaperInputs, local_rank: int | None, *, sam: bool = True
) -> list[str]:
    """The flags naming the models and the device; ``sam=False``: without SAM's (`train`
    learns SAMIC alone and takes none)."""
    flags = []
    named = [("--backbone-weights", inputs.backbone_weights)]
    if sam:
        named += [("--sam-model", inputs.sam_model), ("--sam-checkpoint", inputs.sam_checkpoint)]
    for flag, value in named:
        if value is not None:
            flags += [flag, str(value)]
    device = inputs.device
    if local_rank is not None and device in (None, "auto", "cuda"):
        # torchrun: one process per GPU; on a machine without CUDA, the device `auto` picks
        from samic_vos.runtime.devices import shard_device

        device = str(shard_device(device or "auto", local_rank))
    return flags + (["--device", device] if device else [])


def _argv(
    run: PaperRun, inputs: BenchPaperInputs, network: Path | None, local_rank: int | None
) -> list[str]:
    """The benchmark command of ``run`` (its shard is the whole of it)."""
    out = str(inputs.out_dir / run.name)
    flags = [*_model_flags(inputs, local_rank), "--prompter", inputs.prompter, "--report"]
    if run.column.bench == "davis":
        argv = ["bench", "davis", "--davis-root", str(run.root), "--year", run.column.dataset]
        argv += ["--set", "val", "-o", out, "--shard", "0/1", *flags]
        if inputs.train:
            argv.append("--train")
            if inputs.train_config is not None:
                argv += ["--config", str(inputs.out_dir / DAVIS_TRAIN_CONFIG)]
        elif inputs.samic_checkpoint is not None:
            argv += ["--samic", str(inputs.samic_checkpoint)]
        return argv
    argv = ["bench", "fewshot", "--dataset", run.column.dataset, "--root", str(run.root)]
    argv += ["--shots", "1", "-o", out, "--shard", "0/1", *flags]
    if run.fold is not None:
        argv += ["--fold", str(run.fold)]
    if network is not None:
        argv += ["--samic", str(network)]
    if inputs.episode_count is not None:
        argv += ["--episode-count", str(inputs.episode_count)]
    return argv


def _finished(folder: Path) -> bool:
    manifest = read_manifest(folder) if folder.is_dir() else None
    return manifest is not None and manifest.finished and (folder / "scores.json").is_file()


def _merge(out: Path, runs: list[PaperRun], manifest: RunManifest) -> BenchPaperResult:
    old = read_manifest(out)
    if old is None or old.command != manifest.command:
        raise UserError(f"{out}: holds no `bench paper` run to merge; pass its `out_dir`")
    remaining = [r.name for r in runs if not _finished(out / r.name)]
    if remaining:
        shown = ", ".join(remaining[:5]) + (" ..." if len(remaining) > 5 else "")
        raise UserError(
            f"{out}: {len(remaining)} of {len(runs)} runs are not finished ({shown}); run "
            "their shards first"
        )
    old.finished = True
    scores = write_table(out, runs, Path(old.inputs["root"]))
    write_manifest(out, old)
    return BenchPaperResult([], [], scores)


def _read_scores(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "scores.json").read_text(encoding="utf-8"))


def column_scores(out: Path, runs: Sequence[PaperRun], root: Path) -> dict[str, Any]:
    """Every column's entry of ``scores.json``: ``status`` (``"scored"`` or
    :data:`NO_DATA`), ``ours`` (x 100, ``None`` unless scored), ``metric``, the
    ``reports`` of its runs (relative to ``out``), its ``published`` figures."""
    found = find_columns(root)
    columns: dict[str, Any] = {}
    for column in COLUMNS:
        mine = [r for r in runs if r.column.key == column.key]
        entry: dict[str, Any] = {
            "title": column.title,
            "metric": column.metric,
            "status": "scored" if mine else found[column.key],
            "ours": None,
            "reports": [f"{r.name}/report.html" for r in mine],
            "published": published(column.key),
        }
        if column.folds and mine:
            table = combine_folds([(r.name, _read_scores(out / r.name)) for r in mine])
            entry["ours"] = table["mean"]["mIoU"]
            entry["folds"] = {f: row["mIoU"] for f, row in table["folds"].items()}
        elif mine:
            scores = _read_scores(out / mine[0].name)
            value = scores["global"][column.metric]
            entry["ours"] = 100 * value if column.bench == "davis" else value
        columns[column.key] = entry
    return columns


def _our_label(out: Path, runs: Sequence[PaperRun]) -> str:
    config = _read_scores(out / runs[0].name).get("config") or {}
    job = config.get("track") or config.get("segment") or {}
    return f"ours ({job.get('prompter', '?')}, SAM {job.get('sam_model', '?')})"


def write_table(out: Path, runs: Sequence[PaperRun], root: Path) -> dict[str, Any]:
    """``OUT/scores.json``, ``OUT/table1.md`` and ``OUT/report.html`` from the finished runs;
    returns the scores."""
    from samic_vos.reports.paper_report import paper_markdown, paper_report

    scores = {
        "label": _our_label(out, runs),
        "root": str(root),
        "columns": column_scores(out, runs, root),
        "runs": [r.name for r in runs],
    }
    atomic_write_text(out / "scores.json", json.dumps(scores, indent=1) + "\n")
    atomic_write_text(out / "table1.md", paper_markdown(scores))
    paper_report(scores).write(out / "report.html")
    log.info("wrote %s, %s, %s", out / "table1.md", out / "scores.json", out / "report.html")
    return scores
