"""`samic-vos bench fewshot`: every test episode of a few-shot dataset segmented, scored, tabled.

Protocols (:mod:`samic_vos.data.fewshot_episodes`): FSS-1000 (and plain or SAMBOX folders) as HSNet
tests it, every image the query of one episode with ``shots`` supports of its class drawn by
the seed; PASCAL-5i and COCO-20i as HSNet tests them, one fold per run, 1000 episodes drawn as
HSNet draws them; PerSeg as PerSAM tests it, the reference ``00`` of each object supporting each
of its other images. Each episode's supports are the references of a
:class:`~samic_vos.inference.fewshot_engine.FewShotSegmenter` and its query the one target; the
prediction is written to ``OUT/pred/<class>/<episode>.png`` (a palette PNG, id 1 the class:
:func:`~samic_vos.eval.fewshot_eval.prediction_path`; ``<episode>`` is the query's name, after
the episode's number where queries come back) and its prompts to
``OUT/prompts/<class>/<episode>.json`` (`segment`'s prompts line of the query, with the names of
its supports), each atomically. The complete folder is scored by
:func:`~samic_vos.eval.fewshot_eval.score_predictions` into ``OUT/scores.json``.

K-shot (``protocol.kshot``): ``average`` is SAMIC's (the engine averages the K heat maps the
network predicts from the K supports, then finds the peaks: one set of prompts, one SAM call
per instance); ``vote`` is HSNet's ``predict_mask_nshot``: each support alone predicts a mask
(as a 1-shot episode; a support with an empty mask votes for nothing) and
:func:`~samic_vos.eval.fewshot_metrics.hsnet_vote` combines the K masks.

SAM and the SAMIC network load once. Classes are done one after another (episodes of one class
together, whatever their order in the protocol); SAM's embedding of an image is computed once
per class and reused in every episode of the class where the image is a support or the query
(only one class's images are held at a time), and the references' features are computed once
for consecutive episodes with the same supports (PerSeg: once per object). SAMIC needs a
trained network (``samic_checkpoint``): adapting it per episode is not done here. ``persam``
needs no network.

Runs resume as ``bench davis`` does (:mod:`samic_vos.runtime.runs`, manifest ``OUT/run.json``):
finished episodes are skipped, another configuration into the same ``OUT`` is refused, ``force``
starts afresh. Shards (:mod:`samic_vos.runtime.shards`: ``shard`` I/N, torchrun, a Slurm array)
take whole classes, dealt by their episode counts (a class's images are embedded once, in one
process); the shard that finds every episode done (or ``merge``) scores the set.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samic_vos.data.fewshot_episodes import (
    Episode,
    EpisodeConfig,
    FewShotSelection,
    check_episode_files,
    episodes_csv,
    protocol_episodes,
    protocol_record,
)
from samic_vos.data.fewshot_sets import FewShotDataset, FewShotItem
from samic_vos.data.mask_io import write_mask
from samic_vos.eval.fewshot_eval import eval_size, prediction_path, score_predictions
from samic_vos.eval.fewshot_metrics import hsnet_vote
from samic_vos.eval.published import published
from samic_vos.inference.fewshot_engine import FewShotSegmenter
from samic_vos.inference.prompter import Reference
from samic_vos.inference.prompts_log import image_record
from samic_vos.jobs.segment import SegmentConfig
from samic_vos.runtime.atomic import atomic_write_text
from samic_vos.runtime.config import manifest_config, require, require_choice, save_config
from samic_vos.runtime.console import bar
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_dir, removing_new_folders
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

log = logging.getLogger(__name__)

CLASS_ID = 1  # a class is id 1 of its reference and of its prediction
# The column of the published 1-shot mIoU (eval.published) of each dataset tested whole (PASCAL-5i
# and COCO-20i are published as 4-fold means: `bench fewshot --combine`, `bench paper`). A LabelMe
# run is printed beside TSMU's figures (TSMU is distributed as LabelMe files; any other LabelMe set
# is not TSMU).
PUBLISHED_COLUMN = {
    **{kind: kind for kind in ("fss1000", "perseg", "kvasir", "nwpu-vhr10")},
    "labelme": "tsmu",
}
OUTPUTS = ("pred", "prompts", "timings", CONFIG_FILE, "scores.json", "report.html")
STAGES = ("encoder", "prompter", "decoder", "other")
KSHOT = ("average", "vote")  # SAMIC's heat-map average, HSNet's mask vote


@dataclass
class ProtocolConfig:
    """How K supports make one prediction and at what size it is scored (key ``protocol:``)."""

    kshot: str = KSHOT[0]  # average: SAMIC's K heat maps averaged; vote: HSNet's mask vote
    # HSNet's areas counted at: auto (400 x 400 for FSS-1000, PASCAL-5i, COCO-20i as HSNet's
    # test.py; the masks' own size for folders), original (the query's size), or N (N x N)
    eval_size: int | str = "auto"

    def __post_init__(self) -> None:
        require_choice("kshot", self.kshot, KSHOT)
        ok = self.eval_size in ("auto", "original") or (
            isinstance(self.eval_size, int) and self.eval_size >= 1
        )
        require(ok, "eval_size", "auto, original or an integer >= 1", self.eval_size)


@dataclass
class BenchFewshotConfig:
    """Everything `samic-vos bench fewshot` can be told (defaults; YAML and flags override).

    ``segment`` is `samic-vos segment`'s config (the same keys; its network is recorded from
    the checkpoint). Predictions are semantic masks: ``segment.instances`` and
    ``segment.overlays`` stay off.
    """

    dataset: FewShotSelection = field(default_factory=FewShotSelection)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)

    def __post_init__(self) -> None:
        for key in ("instances", "overlays"):
            value = getattr(self.segment, key)
            require(not value, f"segment.{key}", "false (bench fewshot scores class masks)", value)


@dataclass
class BenchFewshotInputs:
    """Paths and switches given on the command line."""

    root: Path
    out_dir: Path
    samic_checkpoint: Path | None = None
    sam_checkpoint: Path | None = None
    backbone_weights: Path | None = None
    force: bool = False
    report: bool = False  # also write OUT/report.html
    shard: str | None = None  # "I/N"; None: the launcher's (torchrun, Slurm), else every class
    merge: bool = False  # only score a sharded run whose shards have all finished


@dataclass
class BenchFewshotResult:
    """What the run did: ``computed`` episodes by this call, and the scores (``None`` while
    other shards' episodes remain: ``remaining``)."""

    episodes: int
    computed: int
    scores: dict[str, Any] | None
    remaining: int = 0


def episode_list(root: Path, config: BenchFewshotConfig) -> str:
    """The test episodes of the dataset under ``root`` as CSV text (header
    ``episode,class,query,supports``; paths relative to ``root``), from its layout and split
    lists alone: no image is read, no model loaded."""
    dataset = config.dataset.open(root)
    return episodes_csv(protocol_episodes(dataset, config.episodes), root)


def run_bench_fewshot(
    inputs: BenchFewshotInputs, config: BenchFewshotConfig, progress: bool = True
) -> BenchFewshotResult:
    """Segment every episode not done yet, then score the whole set (see the module docs)."""
    prompter = config.segment.prompter
    if prompter == "samic" and inputs.samic_checkpoint is None:
        raise UserError(
            "the samic prompter needs a trained network: pass `samic_checkpoint` (one from "
            "`samic-vos train --fewshot`), or use the training-free prompter persam"
        )
    if prompter != "samic" and inputs.samic_checkpoint is not None:
        raise UserError(f"`samic_checkpoint` is SAMIC's network: drop it for {prompter}")
    dataset = config.dataset.open(inputs.root)
    eval_size(dataset.kind, config.protocol.eval_size)  # refused before any work
    episodes = protocol_episodes(dataset, config.episodes)
    check_episode_files(dataset, episodes)
    out = inputs.out_dir
    check_writable_dir(out)
    if inputs.merge:
        return _merge(inputs, config, dataset, episodes)
    shard = resolve_shard(inputs.shard)
    runner = _Runner(inputs, config, dataset, progress, shard.local_rank)
    manifest = runner.manifest()
    state = open_run(out, manifest, force=inputs.force, outputs=OUTPUTS, shards=shard.count)
    with removing_new_folders(out):
        if state != "finished":
            out.mkdir(parents=True, exist_ok=True)
            write_manifest(out, manifest)
            save_config(runner.ran, out / CONFIG_FILE, version=__version__)
        runner.run(shard_episodes(shard, episodes))  # only what is missing
        runner.save_timings()
        remaining = sum(not episode_done(out, e) for e in episodes)
        if remaining:
            return BenchFewshotResult(len(episodes), runner.computed, None, remaining)
        scores = _finish(inputs, config, dataset, episodes, manifest)
    return BenchFewshotResult(len(episodes), runner.computed, scores)


def shard_episodes(shard: Shard, episodes: list[Episode]) -> list[Episode]:
    """``shard``'s episodes: whole classes, dealt by their episode counts (heaviest first),
    in the protocol's order."""
    counts: dict[str, int] = {}
    for episode in episodes:
        counts[episode.class_name] = counts.get(episode.class_name, 0) + 1
    owners = dict(zip(counts, shard.owners(list(counts.values())), strict=True))
    return [e for e in episodes if owners[e.class_name] == shard.index]


def _finish(
    inputs: BenchFewshotInputs,
    config: BenchFewshotConfig,
    dataset: FewShotDataset,
    episodes: list[Episode],
    manifest: RunManifest,
) -> dict[str, Any]:
    """Score the complete set (scores.json), mark the run finished, write the report."""
    out = inputs.out_dir
    scores = score(out, dataset, episodes, config.episodes, config.protocol.eval_size)
    manifest.finished = True
    write_manifest(out, manifest)
    if inputs.report:
        from samic_vos.reports.fewshot_report import write_fewshot_report

        log.info("wrote %s", write_fewshot_report(out, dataset, episodes, scores))
    return scores


def _merge(
    inputs: BenchFewshotInputs,
    config: BenchFewshotConfig,
    dataset: FewShotDataset,
    episodes: list[Episode],
) -> BenchFewshotResult:
    """``merge``: score a sharded run whose shards have all finished (no model is loaded)."""
    out = inputs.out_dir
    manifest = read_manifest(out)
    if manifest is None or manifest.command != "bench-fewshot":
        raise UserError(f"{out}: holds no `bench fewshot` run to merge; pass its `out_dir`")
    remaining = sum(not episode_done(out, e) for e in episodes)
    if remaining:
        raise UserError(
            f"{out}: {remaining} of {len(episodes)} episodes are not done; run their shards first"
        )
    scores = _finish(inputs, config, dataset, episodes, manifest)
    return BenchFewshotResult(len(episodes), 0, scores)


def episode_done(out: Path, episode: Episode) -> bool:
    """Whether ``episode``'s prediction (written last) and prompts are in ``out``."""
    return prediction_path(out / "pred", episode).is_file() and prompts_path(out, episode).is_file()


def prompts_path(out: Path, episode: Episode) -> Path:
    """``out/prompts/<class>/<episode>.json``: the episode's supports and prompts."""
    return out / "prompts" / episode.class_name / f"{episode.name}.json"


class _Runner:
    """The models (loaded once) and the episodes of one process."""

    def __init__(
        self,
        inputs: BenchFewshotInputs,
        config: BenchFewshotConfig,
        dataset: FewShotDataset,
        progress: bool,
        local_rank: int | None = None,
    ) -> None:
        from samic_vos.api.models import job_models

        self.inputs, self.config, self.dataset, self.progress = inputs, config, dataset, progress
        self.out = inputs.out_dir
        models, segment = job_models(
            config.segment,
            inputs.sam_checkpoint,
            inputs.samic_checkpoint,
            inputs.backbone_weights,
            local_rank,
        )
        self.device = models.device
        self.segmenter = models.segmenter
        self.engine = FewShotSegmenter(
            models.prompter, self.segmenter, models.net, segment.tracker, self.device
        )
        self.ran = dataclasses.replace(config, segment=segment)
        self.timer = StageTimer()
        self.timer.wrap(self.segmenter, "embed", "encoder")
        self.timer.wrap(self.segmenter, "segment", "decoder")
        self.timer.wrap(self.segmenter, "prompt", "decoder")
        self.timer.wrap(self.segmenter, "segment_instances", "decoder")
        self.timer.wrap(self.engine, "set_references", "prompter")
        self.timer.wrap(self.engine, "segment", "prompter")
        self.computed = 0
        self.wall = 0.0
        self._references_of: tuple[FewShotItem, ...] | None = None  # the engine's supports

    def manifest(self) -> RunManifest:
        """The run's manifest (the device is not part of it)."""
        return RunManifest(
            command="bench-fewshot",
            inputs={
                "root": str(self.inputs.root.resolve()),
                "samic": fingerprint(self.inputs.samic_checkpoint),
                "sam": fingerprint(self.inputs.sam_checkpoint),
                "backbone_weights": fingerprint(self.inputs.backbone_weights),
            },
            config=manifest_config(self.ran, "segment"),
        )

    def run(self, episodes: list[Episode]) -> None:
        """Segment the episodes without a prediction yet, class by class."""
        todo = [e for e in episodes if not episode_done(self.out, e)]
        if len(todo) < len(episodes):
            log.info("%d of %d episodes already done", len(episodes) - len(todo), len(episodes))
        by_class: dict[str, list[Episode]] = {}  # classes in order of their first episode
        for episode in todo:
            by_class.setdefault(episode.class_name, []).append(episode)
        empty = 0
        with bar(total=len(todo), desc="episodes", unit="ep", disable=not self.progress) as shown:
            for group in by_class.values():
                empty += self._class(group, shown)
        if empty:
            log.warning("%d episode(s) with empty support masks: predicted empty", empty)

    def _class(self, episodes: list[Episode], shown) -> int:
        """The episodes of one class; returns how many had only empty support masks."""
        images: dict[Path, tuple[np.ndarray, np.ndarray, Any]] = {}  # this class's images

        def image(item: FewShotItem) -> tuple[np.ndarray, np.ndarray, Any]:
            if item.image not in images:
                rgb, mask = self.dataset.load(item)
                images[item.image] = (rgb, mask, self.segmenter.embed(rgb))
            return images[item.image]

        empty = 0
        for episode in episodes:
            start = time.perf_counter()
            rgb, _, embedding = image(episode.query)
            supports = [(item, *image(item)) for item in episode.supports]
            if not any(mask.any() for _, _, mask, _ in supports):
                empty += 1
                ids = np.zeros(rgb.shape[:2], dtype=np.uint8)
                query = episode.query
                record = {"image": query.name, "path": str(query.image), "classes": {}}
            elif self.config.protocol.kshot == "vote" and len(supports) > 1:
                ids, record = self._vote(episode, rgb, embedding, supports)
            else:
                result = self._segment(rgb, embedding, supports)
                ids = result.ids
                record = image_record(episode.query.name, episode.query.image, result)
            record["supports"] = [item.name for item in episode.supports]
            prompts = prompts_path(self.out, episode)
            prompts.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(prompts, json.dumps(record) + "\n")
            pred = prediction_path(self.out / "pred", episode)
            pred.parent.mkdir(parents=True, exist_ok=True)
            write_mask(pred, ids)  # last: the episode is done once its prediction exists
            self.wall += time.perf_counter() - start
            self.computed += 1
            shown.update()
        return empty

    def _segment(self, rgb: np.ndarray, embedding: Any, supports: list[tuple]) -> Any:
        """The engine's result on the query from ``supports`` (``(item, rgb, mask, embedding)``
        each); the references are set again only when the supports change."""
        items = tuple(item for item, _, _, _ in supports)
        if self._references_of != items:
            self.engine.set_references(
                [
                    Reference(s_rgb, (mask * CLASS_ID).astype(np.uint8), embedding=s_emb)
                    for _, s_rgb, mask, s_emb in supports
                ]
            )
            self._references_of = items
        return self.engine.segment([rgb], [embedding])[0]

    def _vote(
        self, episode: Episode, rgb: np.ndarray, embedding: Any, supports: list[tuple]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """HSNet's K-shot: one prediction per support (1-shot), combined by :func:`hsnet_vote`;
        the record keeps each support's prompts under ``votes``."""
        masks, votes = [], []
        for support in supports:
            if not support[2].any():  # an empty support mask votes for nothing
                masks.append(np.zeros(rgb.shape[:2], dtype=bool))
                votes.append({})
                continue
            result = self._segment(rgb, embedding, [support])
            masks.append(result.ids > 0)
            votes.append(image_record(episode.query.name, episode.query.image, result)["classes"])
        ids = hsnet_vote(masks).astype(np.uint8) * CLASS_ID
        query = episode.query
        return ids, {"image": query.name, "path": str(query.image), "classes": {}, "votes": votes}

    def save_timings(self) -> None:
        """This process's images, wall seconds and stage seconds: OUT/timings/<ns>.json."""
        save_timings(self.out, self.timer, STAGES, self.computed, self.wall)


def score(
    out: Path,
    dataset: FewShotDataset,
    episodes: list[Episode],
    episode_config: EpisodeConfig,
    size: int | str = "auto",
) -> dict[str, Any]:
    """Score ``out/pred`` (HSNet's areas counted at :func:`eval_size` of ``size``); writes and
    returns ``out/scores.json`` (the table's content): :func:`described_scores`, plus images
    per second over the runs that computed episodes, seconds per stage, and the run's
    configuration.
    """
    scores = described_scores(out / "pred", dataset, episodes, episode_config, size)
    images, wall, seconds = total_timings(out, STAGES)
    manifest = read_manifest(out)
    scores.update(
        images=images,
        ips=images / wall if wall > 0 else None,
        seconds=seconds,
        config=manifest.config if manifest is not None else {},
    )
    atomic_write_text(out / "scores.json", json.dumps(scores, indent=1) + "\n")
    return scores


def described_scores(
    pred_dir: Path,
    dataset: FewShotDataset,
    episodes: list[Episode],
    episode_config: EpisodeConfig,
    size: int | str = "auto",
) -> dict[str, Any]:
    """:func:`score_predictions` of ``pred_dir`` (``global``, ``per_class``, HSNet's ``sums``)
    with what they mean: the published 1-shot mIoU of the dataset (none for folders, PASCAL-5i
    and COCO-20i), the dataset, split, fold, shots, the size the areas were counted at
    (``[h, w]`` or ``"original"``), the numbers of classes and episodes, and ``protocol`` (how
    the episodes were made: :func:`protocol_record`)."""
    scores = score_predictions(dataset, episodes, pred_dir, size)
    counted = eval_size(dataset.kind, size)
    column = PUBLISHED_COLUMN.get(dataset.kind)
    scores.update(
        published=published(column, with_missing=False) if column is not None else {},
        dataset=dataset.kind,
        split=getattr(dataset, "split", None) if dataset.kind == "fss1000" else None,
        fold=getattr(dataset, "fold", None),
        shots=episode_config.shots,
        eval_size=list(counted) if counted is not None else "original",
        classes=len(dataset.classes),
        episodes=len(episodes),
        protocol=protocol_record(dataset, episode_config),
    )
    return scores


@dataclass
class EvalFewshotConfig:
    """Everything `samic-vos eval fewshot` can be told: the dataset and episodes as `bench
    fewshot` makes them, and where areas are counted (``protocol.eval_size``)."""

    dataset: FewShotSelection = field(default_factory=FewShotSelection)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)


def evaluate_predictions(
    pred_dir: Path, root: Path, config: EvalFewshotConfig | BenchFewshotConfig
) -> dict[str, Any]:
    """Scores of any method's predictions ``pred_dir/<class>/<episode>.png`` of the episodes
    ``config`` makes on the dataset under ``root``: the numbers `bench fewshot` gives for the
    same predictions (:func:`described_scores`). Nothing is written.

    Raises :class:`UserError` for a missing folder or prediction, or one of the wrong size.
    """
    dataset = config.dataset.open(root)
    eval_size(dataset.kind, config.protocol.eval_size)  # refused before any work
    episodes = protocol_episodes(dataset, config.episodes)
    if not pred_dir.is_dir():
        raise UserError(f"{pred_dir}: prediction folder not found; pass PRED/<class>/*.png's PRED")
    return described_scores(pred_dir, dataset, episodes, config.episodes, config.protocol.eval_size)
