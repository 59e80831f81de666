"""`samic-vos bench davis`: every sequence of a DAVIS set tracked, scored and tabled.

Each sequence is tracked from its first annotated frame (every object of that mask; DAVIS-2016
masks binarised) by the same loop as `samic-vos track` (:func:`track_sequence`), into
``OUT/results/<seq>/<frame>.png`` (the DAVIS layout) and ``OUT/prompts/<seq>.jsonl``; the
complete folder is scored by `samic-vos eval davis`'s code (a sequence tracked by an unsharded
run is scored in a background thread as soon as it is finished, while the next one is tracked).
SAM and the SAMIC backbone load once per process. The SAMIC network is a checkpoint
(``samic_checkpoint``), one trained first on the root's train set (``train``:
``OUT/samic.pt``), or, with neither, adapted on each sequence's first frame
(``OUT/adapted/<seq>.pt``), as `track` does.

Runs resume as `track` does: finished sequences are skipped and an unfinished one continues
from its last complete frame; ``OUT/run.json`` is the manifest (another configuration into the
same ``OUT`` is refused). Shards (:mod:`samic_vos.runtime.shards`) each track their share and write
their timings in ``OUT/timings/``; the shard that completes the set (or ``merge``) scores it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from samic_vos.data.davis import DavisDataset, DavisSelection
from samic_vos.eval.published import published
from samic_vos.inference.prompts_log import complete_records
from samic_vos.jobs.track import TrackConfig, track_sequence
from samic_vos.runtime.atomic import atomic_path, atomic_write_text, remove_leftovers
from samic_vos.runtime.background_jobs import BackgroundJobs
from samic_vos.runtime.config import manifest_config, save_config
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_dir
from samic_vos.runtime.runs import (
    CONFIG_FILE,
    RunManifest,
    fingerprint,
    open_run,
    read_manifest,
    write_manifest,
)
from samic_vos.runtime.shards import Shard, resolve_shard
from samic_vos.runtime.stage_timer import StageTimer, save_timings, total_timings
from samic_vos.runtime.version import __version__
from samic_vos.sam.run_ahead import run_ahead_enabled
from samic_vos.training.job import TrainJobConfig

if TYPE_CHECKING:
    from samic_vos.eval.davis_eval import SequenceScores

log = logging.getLogger(__name__)

OUTPUTS = (
    *("results", "prompts", "adapted", "timings", "train"),
    *("samic.pt", CONFIG_FILE, "scores.json", "report.html"),
)
STAGES = ("encoder", "prompter", "decoder", "other")


@dataclass
class BenchDavisConfig:
    """Everything `samic-vos bench davis` can be told (defaults; YAML and flags override).

    ``track`` is `samic-vos track`'s config (the same keys); ``train`` is `samic-vos train`'s,
    used with ``train`` (its DAVIS year and resolution are this run's ``davis``).
    """

    davis: DavisSelection = field(default_factory=DavisSelection)
    track: TrackConfig = field(default_factory=TrackConfig)
    train: TrainJobConfig = field(default_factory=TrainJobConfig)


@dataclass
class BenchInputs:
    """Paths and switches given on the command line."""

    davis_root: Path
    out_dir: Path
    samic_checkpoint: Path | None = None
    train: bool = False
    sam_checkpoint: Path | None = None
    backbone_weights: Path | None = None
    shard: str | None = None
    merge: bool = False
    force: bool = False
    report: bool = False  # also write OUT/report.html
    compare: tuple[Path, ...] = ()  # other finished bench runs shown beside this one


@dataclass
class BenchResult:
    """What the run did; ``scores`` is ``None`` until the whole set is tracked."""

    sequences: list[str]  # this process's share
    computed: int  # frames computed by this process
    remaining: list[str]  # sequences of the set not finished yet
    scores: dict[str, Any] | None = None


def _sequence_done(out: Path, dataset: DavisDataset, name: str) -> bool:
    frames = dataset.frame_paths(name)
    records = complete_records(out / "prompts" / f"{name}.jsonl")
    return len(records) == len(frames) and all(
        (out / "results" / name / f"{p.stem}.png").is_file() for p in frames
    )


def _names(config: BenchDavisConfig, dataset: DavisDataset) -> list[str]:
    """The sequences to run, each known and scorable (else a UserError before any work)."""
    from samic_vos.eval.davis_eval import check_scorable

    names = list(config.davis.sequences or dataset.sequences)
    for name in names:
        dataset.annotation_paths(name)  # an unknown sequence is a UserError naming the list
    check_scorable(dataset, names)
    return names


def run_bench_davis(
    inputs: BenchInputs, config: BenchDavisConfig, progress: bool = True
) -> BenchResult:
    """Track this process's share of the set, and score the set once it is complete."""
    dataset = config.davis.open(inputs.davis_root)
    names = _names(config, dataset)
    out = inputs.out_dir
    check_writable_dir(out)
    for other in inputs.compare:
        if not (other / "scores.json").is_file():
            raise UserError(f"{other}: holds no finished `bench davis` run to compare with")
    if inputs.merge:
        result = _merge(out, dataset, names)
        _maybe_report(inputs, dataset, names)
        return result
    shard = resolve_shard(inputs.shard)
    if inputs.train and inputs.samic_checkpoint is not None:
        raise UserError("`samic_checkpoint` and `train` exclude each other: use one network")
    if inputs.train and shard.count > 1 and not (out / "samic.pt").is_file():
        raise UserError(
            "training runs once, not per shard: run the benchmark with `train` in one process "
            "first (it trains OUT/samic.pt, then tracks), then launch the shards"
        )
    mine = shard.take([(n, len(dataset.frame_paths(n))) for n in names])
    scored: dict[str, SequenceScores] = {}
    runner = _Runner(inputs, config, dataset, shard, progress)
    manifest = runner.manifest(names)
    state = open_run(out, manifest, force=inputs.force, outputs=OUTPUTS, shards=shard.count)
    if state != "finished":
        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out, manifest)
        save_config(runner.ran, out / CONFIG_FILE, version=__version__, samic=runner.samic_mode)
        runner.prepare_network()
        # With the whole set in this process, each sequence is scored in a background thread
        # once it is tracked, while the next one is (shards leave the scoring to the last).
        # Sequences finished by an earlier run are left to the final scoring's processes.
        # An interrupted run keeps the timings of the sequences it finished (the table's
        # frames per second count every process's).
        try:
            with BackgroundJobs(depth=max(1, len(mine))) as scoring:
                for name in mine:
                    if runner.track(name) and shard.count == 1:
                        scoring.submit(_scoring_job(out, dataset, name, scored))
        finally:
            runner.save_timings()
    remaining = [n for n in names if not _sequence_done(out, dataset, n)]
    result = BenchResult(mine, runner.computed, remaining)
    if not remaining:
        result.scores = score(out, dataset, names, scored)
        manifest.finished = True
        write_manifest(out, manifest)
        _maybe_report(inputs, dataset, names, scored)
    return result


def _label(folder: Path) -> str:
    """A bench run's name in the report: its prompter and folder."""
    manifest = read_manifest(folder)
    track = (manifest.config.get("track", {}) if manifest is not None else {}) or {}
    return f"{track.get('prompter', folder.name)} ({folder.name})"


def _maybe_report(
    inputs: BenchInputs,
    dataset: DavisDataset,
    names: list[str],
    scored: Mapping[str, SequenceScores] | None = None,
) -> None:
    """OUT/report.html: this run (``scored``: its sequences scored already) and the
    ``compare`` runs side by side (with ``report``)."""
    if not inputs.report:
        return
    import yaml

    from samic_vos.eval.davis_eval import evaluate_davis
    from samic_vos.reports.davis_report import ResultSet, davis_report

    figures = published(f"davis{dataset.year}", with_missing=False)
    table = {k: {"J&F-Mean": v} for k, v in figures.items()}
    sets = [
        ResultSet(
            _label(folder),
            evaluate_davis(
                folder / "results",
                dataset,
                names,
                scored=scored if folder == inputs.out_dir else None,
            ),
            folder / "results",
            folder / "prompts",
        )
        for folder in (inputs.out_dir, *inputs.compare)
    ]
    manifest = read_manifest(inputs.out_dir)
    text = yaml.safe_dump(manifest.config, sort_keys=False) if manifest is not None else None
    title = f"samic-vos bench davis: DAVIS-{dataset.year} {dataset.split}"
    report = davis_report(sets, dataset, published=table, config_yaml=text, title=title)
    report.write(inputs.out_dir / "report.html")
    log.info("wrote %s", inputs.out_dir / "report.html")


class _Runner:
    """The models (loaded once) and the per-sequence tracking of one process."""

    def __init__(
        self,
        inputs: BenchInputs,
        config: BenchDavisConfig,
        dataset: DavisDataset,
        shard: Shard,
        progress: bool,
    ) -> None:
        from samic_vos.api.models import load_segmenter
        from samic_vos.runtime.devices import shard_device

        self.inputs, self.config, self.dataset, self.progress = inputs, config, dataset, progress
        self.out = inputs.out_dir
        device = shard_device(config.track.device, shard.local_rank)
        self.device = device
        self.segmenter = load_segmenter(
            config.track.sam_model,
            inputs.sam_checkpoint,
            device=device,
            encoder=config.track.encoder,
            threads=config.track.threads,
        )
        self.net = None
        self.samic_mode = None
        if config.track.prompter == "samic":
            self.net, self.samic_mode = self._network()
        loaded = self.segmenter.model_name
        if inputs.train:  # the network is (or will be) trained from train.network
            network = config.train.network
        else:
            network = self.net.config if self.net is not None else config.track.network
        track = dataclasses.replace(
            config.track,
            device=str(device),
            sam_model=loaded or config.track.sam_model,
            network=network,
        )
        self.ran = dataclasses.replace(config, track=track)
        self.timer = StageTimer()
        self.timer.wrap(self.segmenter, "embed", "encoder")
        self.timer.wrap(self.segmenter, "segment", "decoder")
        self.timer.wrap(self.segmenter, "prompt", "decoder")
        self.computed = 0
        self.wall = 0.0
        self._initial_head: dict[str, torch.Tensor] | None = None

    def _network(self):
        from samic_vos.model.checkpoint import load_samic
        from samic_vos.model.samic_net import build_samic

        if self.inputs.samic_checkpoint is not None:
            net, _ = load_samic(
                self.inputs.samic_checkpoint, self.device, self.inputs.backbone_weights
            )
            return net, f"checkpoint {self.inputs.samic_checkpoint}"
        if self.inputs.train and (self.out / "samic.pt").is_file():
            net, _ = load_samic(self.out / "samic.pt", self.device, self.inputs.backbone_weights)
            return (
                net,
                f"trained on the {self.config.davis.year} train set: {self.out / 'samic.pt'}",
            )
        if self.inputs.train:
            return (
                None,
                f"trained on the {self.config.davis.year} train set: {self.out / 'samic.pt'}",
            )
        net = build_samic(self.config.track.network, self.inputs.backbone_weights).to(self.device)
        return net, "adapted on each sequence's first frame (OUT/adapted/<seq>.pt)"

    def manifest(self, names: list[str]) -> RunManifest:
        """The run's manifest: the same for every shard (the device is not part of it)."""
        return RunManifest(
            command="bench-davis",
            inputs={
                "davis_root": str(self.inputs.davis_root.resolve()),
                "sequences": names,
                "samic": fingerprint(self.inputs.samic_checkpoint),
                "train": self.inputs.train,
                "sam": fingerprint(self.inputs.sam_checkpoint),
                "backbone_weights": fingerprint(self.inputs.backbone_weights),
            },
            config=manifest_config(self.ran, "track"),
        )

    def prepare_network(self) -> None:
        """With ``train``: train SAMIC on the root's train set into OUT/samic.pt (once)."""
        if not self.inputs.train or self.net is not None or self.config.track.prompter != "samic":
            return
        from samic_vos.model.checkpoint import load_samic
        from samic_vos.training.job import run_training

        train = self.config.train
        davis = dataclasses.replace(
            train.davis, year=self.config.davis.year, resolution=self.config.davis.resolution
        )
        train = dataclasses.replace(train, davis=davis, device=str(self.device))
        folder = self.out / "train"
        resume = True if (folder / "latest.pt").is_file() else None
        log.info("training SAMIC on %s's %s set first", self.inputs.davis_root, davis.split)
        run_training(
            train,
            out_dir=folder,
            davis_root=self.inputs.davis_root,
            resume=resume,
            backbone_weights=self.inputs.backbone_weights,
        )
        # Atomically: a rerun loads an existing OUT/samic.pt rather than training again.
        with atomic_path(self.out / "samic.pt") as tmp:
            shutil.copyfile(folder / "best.pt", tmp)
        self.net, _ = load_samic(self.out / "samic.pt", self.device, self.inputs.backbone_weights)

    def track(self, name: str) -> int:
        """Track one sequence (or finish it), timing its stages; returns the frames computed."""
        from samic_vos.data.frame_source import open_frames
        from samic_vos.inference.prompters import build_prompter
        from samic_vos.inference.tracker import CausalTracker

        if _sequence_done(self.out, self.dataset, name):
            return 0
        results = self.out / "results" / name
        prompts = self.out / "prompts" / f"{name}.jsonl"
        results.mkdir(parents=True, exist_ok=True)
        remove_leftovers(results)  # a killed process's; one process tracks a sequence
        prompts.parent.mkdir(exist_ok=True)
        first_path = self.dataset.annotation_paths(name)[0]
        frame_names = [p.stem for p in self.dataset.frame_paths(name)]
        if first_path.stem not in frame_names:
            raise UserError(f"{first_path}: names no frame of sequence '{name}'")
        given = {frame_names.index(first_path.stem): self.dataset.read_annotation(name, 0)}
        config = self.ran.track
        with open_frames(self.dataset.image_dir / name, backend="folder") as frames:
            if self.net is not None and self.samic_mode.startswith("adapted"):
                self._adapt(name, frames, given)
            prompter = build_prompter(
                config.prompter, self.segmenter, config.tracker, self.net, self.device
            )
            self.timer.wrap(prompter, "new_frame", "prompter")
            self.timer.wrap(prompter, "track", "prompter")
            tracker = CausalTracker(prompter, self.segmenter, config.tracker)
            start, before = time.perf_counter(), len(complete_records(prompts))
            # Counted from the prompts lines, also when interrupted: the frames an interrupted
            # process wrote are not tracked again, so the table's frame count and frames per
            # second must count them where they were computed.
            try:
                track_sequence(
                    frames,
                    given,
                    tracker,
                    results,
                    prompts,
                    resume=True,
                    progress=self.progress,
                    desc=name,
                    ahead=run_ahead_enabled(config.encoder, self.device),
                )
            finally:
                self.wall += time.perf_counter() - start
                computed = len(complete_records(prompts)) - before
                self.computed += computed
        return computed

    def _adapt(self, name: str, frames, given) -> None:
        from samic_vos.model.checkpoint import load_samic, save_samic
        from samic_vos.training.first_frame_adaptation import adapt_on_first_frame

        path = self.out / "adapted" / f"{name}.pt"
        path.parent.mkdir(exist_ok=True)
        if self._initial_head is None:
            self._initial_head = {k: v.clone() for k, v in self.net.head.state_dict().items()}
        if path.is_file():
            adapted, _ = load_samic(path, self.device, self.inputs.backbone_weights)
            self.net.head.load_state_dict(adapted.head.state_dict())
            return
        self.net.head.load_state_dict(self._initial_head)
        index, mask = next(iter(given.items()))
        rgb = next(f.rgb for f in frames if f.index == index)
        metrics = adapt_on_first_frame(
            self.net,
            rgb,
            mask,
            self.config.track.adaptation,
            heat_sigma=self.config.track.tracker.heat_sigma,
            device=self.device,
            progress=self.progress,
            state_path=path.with_suffix(".state.pt"),
            threads=self.segmenter.threads.counts["adaptation"],
        )
        save_samic(path, self.net, config=self.ran.track, metrics=metrics)
        path.with_suffix(".state.pt").unlink(missing_ok=True)

    def save_timings(self) -> None:
        """This process's frames, wall seconds and stage seconds: OUT/timings/<ns>.json."""
        save_timings(self.out, self.timer, STAGES, self.computed, self.wall)


def _merge(out: Path, dataset: DavisDataset, names: list[str]) -> BenchResult:
    manifest = read_manifest(out)
    if manifest is None or manifest.command != "bench-davis":
        raise UserError(f"{out}: holds no `bench davis` run to merge; pass its `out_dir`")
    remaining = [n for n in names if not _sequence_done(out, dataset, n)]
    if remaining:
        shown = ", ".join(remaining[:5]) + (" ..." if len(remaining) > 5 else "")
        raise UserError(
            f"{out}: {len(remaining)} of {len(names)} sequences are not finished ({shown}); "
            "run their shards first"
        )
    result = BenchResult([], 0, [], score(out, dataset, names))
    manifest.finished = True
    write_manifest(out, manifest)
    return result


def _scoring_job(
    out: Path, dataset: DavisDataset, name: str, scored: dict[str, SequenceScores]
) -> Callable[[], None]:
    """Score one finished sequence of OUT/results into ``scored``."""
    from samic_vos.eval.davis_eval import score_sequence

    def job() -> None:
        scored[name] = score_sequence(dataset, out / "results", name)

    return job


def score(
    out: Path,
    dataset: DavisDataset,
    names: list[str],
    scored: Mapping[str, SequenceScores] | None = None,
) -> dict[str, Any]:
    """Score OUT/results (``scored``: sequences already scored); writes and returns
    ``OUT/scores.json`` (the table's content)."""
    from samic_vos.eval.davis_eval import evaluate_davis

    evaluation = evaluate_davis(out / "results", dataset, names, scored=scored)
    frames, wall, seconds = total_timings(out, STAGES)
    manifest = read_manifest(out)
    scores = {
        **evaluation.to_json(),
        "published": published(f"davis{dataset.year}"),
        "frames": frames,
        "fps": frames / wall if wall > 0 else None,
        "seconds": seconds,
        "year": dataset.year,
        "set": dataset.split,
        "config": manifest.config if manifest is not None else None,
    }
    atomic_write_text(out / "scores.json", json.dumps(scores, indent=1) + "\n")
    return scores
