"""The training job: config → training pairs → datasets → trainer → checkpoints.

:func:`run_training` is what ``samic-vos train`` runs (once per process under ``torchrun``).
Validation (early stopping, best checkpoint) uses held-out *sequences* of the training data,
never the DAVIS val split, so the val split stays unseen for benchmarks; neighbouring frames of
one video are near-duplicates, so pairs of one sequence never sit on both sides of the split.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from samic_vos.data.davis import DavisSelection
from samic_vos.model.samic_net import SamicNetConfig
from samic_vos.prompts.heatmaps import DEFAULT_SIGMA
from samic_vos.runtime.atomic import remove_leftovers
from samic_vos.runtime.config import config_to_dict, require, require_choice, save_config
from samic_vos.runtime.errors import UserError
from samic_vos.runtime.output_paths import check_writable_dir
from samic_vos.runtime.runs import (
    CONFIG_FILE,
    RunManifest,
    differences,
    open_run,
    write_manifest,
)
from samic_vos.runtime.stage_threads import StageThreads, ThreadsConfig
from samic_vos.runtime.version import __version__
from samic_vos.sam.models import require_models
from samic_vos.training.fewshot_pairs import FewShotPairConfig
from samic_vos.training.optical_flow import FlowConfig
from samic_vos.training.train_dataset import AugmentConfig, PairDataset
from samic_vos.training.trainer import (
    BEST,
    HISTORY,
    LATEST,
    DistInfo,
    TrainConfig,
    TrainResult,
    fit,
    init_distributed,
)
from samic_vos.training.training_pairs import DEFAULT_POINTS_PER_OBJECT, TrainingPair

if TYPE_CHECKING:
    from samic_vos.data.fewshot_sets import FewShotDataset

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """How training pairs are made and how validation is held out (DAVIS: key ``davis:``)."""

    points_per_object: int = DEFAULT_POINTS_PER_OBJECT  # ground-truth points per mask
    sambox_pairing: str = "sequence"  # SAMBOX: "sequence" (videos) or "label" (images)
    # Share of sequences (SAMBOX label pairing: labels) held out for validation, at least one
    # when there are two or more; with a single one, every k-th pair, k = round(1/val_fraction).
    val_fraction: float = 0.125

    def __post_init__(self) -> None:
        require(0 <= self.val_fraction < 1, "val_fraction", "in [0, 1)", self.val_fraction)
        ppo = self.points_per_object
        require(ppo >= 1, "points_per_object", "an integer >= 1", ppo)
        require_choice("sambox_pairing", self.sambox_pairing, ("sequence", "label"))


@dataclass
class TrainJobConfig:
    """Everything ``samic-vos train`` uses; YAML files override these defaults."""

    network: SamicNetConfig = field(default_factory=SamicNetConfig)
    davis: DavisSelection = field(default_factory=lambda: DavisSelection(split="train"))
    flow: FlowConfig = field(default_factory=FlowConfig)
    fewshot: FewShotPairConfig = field(default_factory=FewShotPairConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    heat_sigma: float = DEFAULT_SIGMA  # σ of the heat-map Gaussians (heatmaps.DEFAULT_SIGMA)
    device: str = "auto"  # auto | cuda | cuda:N | mps | cpu; config.yaml records the one used
    threads: ThreadsConfig = field(default_factory=ThreadsConfig)  # torch threads (training)

    def __post_init__(self) -> None:
        require(0 < self.heat_sigma <= 1, "heat_sigma", "in (0, 1]", self.heat_sigma)
        require_models(None, self.device)


@dataclass
class JobResult(TrainResult):
    """:class:`TrainResult` plus this process's rank (only rank 0 wrote files)."""

    rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def split_pairs(
    pairs: list[TrainingPair], val_fraction: float, seed: int
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(train, validation) pairs, split by sequence (see :class:`DataConfig`); deterministic."""
    if val_fraction <= 0 or len(pairs) < 2:
        return list(pairs), []
    names = sorted({p.sequence for p in pairs})
    if len(names) >= 2:
        random.Random(seed).shuffle(names)
        count = min(max(1, round(len(names) * val_fraction)), len(names) - 1)
        held = set(names[:count])
        return [p for p in pairs if p.sequence not in held], [
            p for p in pairs if p.sequence in held
        ]
    step = max(2, round(1 / val_fraction))
    return (
        [p for i, p in enumerate(pairs) if i % step != step - 1],
        [p for i, p in enumerate(pairs) if i % step == step - 1],
    )


def open_fewshot(config: TrainJobConfig, fewshot: tuple[str, str]) -> FewShotDataset:
    """The training side of the few-shot dataset ``fewshot`` (``(kind, root)``) as
    ``config.fewshot`` selects it (fold, FSS-1000 split); UserError naming what is missing."""
    from samic_vos.data.fewshot_readers import open_training_set

    kind, root = fewshot
    return open_training_set(kind, root, fold=config.fewshot.fold, fss_split=config.fewshot.split)


def load_pairs(
    config: TrainJobConfig,
    davis_root: str | None,
    sambox: str | None,
    show: bool,
    fewshot: tuple[str, str] | None = None,
    fewshot_set: FewShotDataset | None = None,
) -> list[TrainingPair]:
    """The training pairs of the job's data source: exactly one of ``davis_root``, ``sambox``
    and ``fewshot`` (a few-shot dataset: ``(kind, root)``, see
    :mod:`samic_vos.data.fewshot_sets`; ``fewshot_set``: that dataset already opened by
    :func:`open_fewshot`, not opened again)."""
    from samic_vos.training.training_pairs import pairs_from_davis, pairs_from_sambox

    if [davis_root, sambox, fewshot].count(None) != 2:
        raise UserError("give exactly one data source: `davis_root`, `sambox` or `fewshot`")
    if fewshot is not None:
        from samic_vos.training.fewshot_pairs import pairs_from_fewshot

        dataset = fewshot_set or open_fewshot(config, fewshot)
        pairs = pairs_from_fewshot(dataset, config.fewshot, config.data.points_per_object)
    elif sambox is not None:
        pairs = pairs_from_sambox(sambox, pairing=config.data.sambox_pairing)
    else:
        pairs = pairs_from_davis(
            config.davis.open(davis_root),
            config.flow,
            points_per_object=config.data.points_per_object,
            sequences=config.davis.sequences,
            progress=show,
        )
    if not pairs:
        raise UserError("no training pair found: check the data source and the flow settings")
    return pairs


# What a training writes in OUT (removed by `force`).
OUTPUTS = (CONFIG_FILE, LATEST, BEST, HISTORY)
# What a resumed training may change (everything else would make it another training: the
# seed, the batch, the learning rate, the data settings, the network, feature caching): how many
# epochs in all and when to stop early; where it runs and how fast (a requeued job may land on
# another node, with its data staged in another folder); the package's version.
RESUME_MAY_CHANGE = (
    "version",
    "inputs",
    "config.device",
    "config.threads",
    "config.train.max_epochs",
    "config.train.patience",
    "config.train.min_delta",
    "config.train.num_workers",
)


def _refuse_another_training(out_dir: Path, manifest: RunManifest) -> None:
    """Raise :class:`UserError` unless ``out_dir`` holds nothing yet or this very training
    (settings outside :data:`RESUME_MAY_CHANGE` differing: naming them), before a resume."""
    open_run(
        out_dir,
        manifest,
        force=False,
        outputs=OUTPUTS,
        may_change=RESUME_MAY_CHANGE,
        # `force` starts afresh and excludes `resume`: not the way on for a resumed run
        other_settings_fix=f"resume with the settings it was started with ({out_dir / CONFIG_FILE} "
        "lists them)",
    )


def _checkpoint_to_resume(
    out_dir: Path,
    manifest: RunManifest,
    resume: str | os.PathLike[str] | bool | None,
    force: bool,
) -> Path | None:
    """The checkpoint ``resume`` names (``True``: ``out_dir/latest.pt``), or ``None`` to start
    from the beginning: without ``resume``, when ``out_dir`` holds nothing yet (a job that is
    requeued runs one command, with ``resume``, from its first start on), and when it holds
    this very training stopped before its first checkpoint (there is nothing to continue, and
    nothing is lost).

    Raises:
        UserError: a checkpoint that is not there (saying what to pass instead); ``out_dir``
            holds another run (other settings than ``max_epochs``: naming them) or other files.
    """
    if resume is None or resume is False:
        return None
    if resume is not True:
        if not Path(resume).is_file():
            raise UserError(f"{resume}: no checkpoint to resume (`resume`)")
        _refuse_another_training(out_dir, manifest)
        return Path(resume)
    latest = out_dir / LATEST
    if latest.is_file():
        _refuse_another_training(out_dir, manifest)
        return latest
    if not force:
        # Nothing there yet (a requeued job's first start), or this very training stopped
        # before its first checkpoint: it starts from the beginning. Another run or other
        # files are refused.
        if open_run(out_dir, manifest, force=False, outputs=OUTPUTS) == "new":
            log.info("%s: no training to continue yet: starting it", out_dir)
        return None
    raise UserError(
        f"{latest}: no checkpoint to resume (`resume`); {out_dir} holds no training to "
        "continue: run it without `resume`"
    )


def run_training(
    config: TrainJobConfig,
    *,
    out_dir: str | os.PathLike[str],
    davis_root: str | os.PathLike[str] | None = None,
    sambox: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | bool | None = None,
    force: bool = False,
    backbone_weights: str | os.PathLike[str] | None = None,
    init_hsnet: str | os.PathLike[str] | None = None,
    fewshot: tuple[str, str | os.PathLike[str]] | None = None,
) -> JobResult:
    """Train SAMIC as ``config`` says and write the run into ``out_dir`` (rank 0 only).

    ``resume``: a checkpoint of an earlier run with the same network config, or ``True`` for
    ``out_dir/latest.pt``; training goes on from its epoch (``config.train.max_epochs``
    counts the epochs of the whole run). Without it, an ``out_dir`` that holds a training is
    refused, unless ``force`` (which starts afresh). ``backbone_weights``: a ResNet-50
    ImageNet state dict (``None``: the weights registry). ``init_hsnet``: an HSNet ResNet-50
    checkpoint whose learner initialises the head of a new run
    (:func:`samic_vos.model.hsnet_weights.load_hsnet_learner`); not with ``resume``. ``fewshot``:
    ``(kind, root)`` of a few-shot image dataset, the data source instead of
    ``davis_root``/``sambox``.
    """
    from samic_vos.model.checkpoint import load_samic
    from samic_vos.model.samic_net import build_samic
    from samic_vos.runtime.devices import select_device
    from samic_vos.training.trainer import seed_everything

    if resume is not None and init_hsnet is not None:
        raise UserError("`init_hsnet` starts a new run; a resumed run has its weights: drop one")
    out_dir = Path(out_dir)
    check_writable_dir(out_dir)
    source = {
        "davis_root": davis_root,
        "sambox": sambox,
        "fewshot": None if fewshot is None else fewshot[1],
    }
    if fewshot is not None:
        source[f"fewshot_{fewshot[0]}"] = fewshot[1]
    manifest = RunManifest(
        command="train",
        inputs={k: None if v is None else str(Path(v).resolve()) for k, v in source.items()},
        config=config_to_dict(config),
    )
    resume = _checkpoint_to_resume(out_dir, manifest, resume, force)
    torch_device = select_device(config.device)
    dist = init_distributed(torch_device)
    if torch_device.type == "cuda" and dist.world_size > 1:
        torch_device = torch.device("cuda", dist.local_rank)
    try:
        few = None if fewshot is None else (fewshot[0], str(fewshot[1]))
        # A wrong root or layout is told before any weight is loaded (or downloaded).
        if davis_root is not None:
            from samic_vos.training.training_pairs import chosen_sequences

            chosen_sequences(config.davis.open(davis_root).sequences, config.davis.sequences)
        fewshot_set = None if few is None else open_fewshot(config, few)
        if resume is None and dist.is_main:
            if (out_dir / LATEST).is_file() and not force:
                raise UserError(
                    f"{out_dir}: holds a training already; pass `resume` to continue it, "
                    "or `force` to start afresh"
                )
            # The same training stopped before its first checkpoint starts again; another
            # run or other files are refused.
            if open_run(out_dir, manifest, force=force, outputs=OUTPUTS) == "resume":
                log.info(
                    "%s: this training stopped before its first checkpoint: starting it "
                    "from the beginning",
                    out_dir,
                )
        if resume is not None:
            model, meta = load_samic(resume, backbone_weights=backbone_weights)
            _require_resumable(resume, meta, config.network)
            resume_state = meta["training"]
        else:
            seed_everything(config.train.seed)  # the head's initial weights
            model, resume_state = build_samic(config.network, backbone_weights), None
            if init_hsnet is not None:
                from samic_vos.model.hsnet_weights import load_hsnet_learner

                load_hsnet_learner(model.head, init_hsnet)
        pairs = load_pairs(config, davis_root, sambox, dist.is_main, few, fewshot_set)
        train_pairs, val_pairs = split_pairs(pairs, config.data.val_fraction, config.train.seed)
        size = config.network.input_size
        resize = config.network.resize
        train_set = PairDataset(
            train_pairs, size, config.augment, config.heat_sigma, config.train.seed, resize
        )
        val_set = PairDataset(
            val_pairs, size, AugmentConfig(enabled=False), config.heat_sigma, resize=resize
        )
        run_info = {
            "source": {k: None if v is None else str(v) for k, v in source.items()},
            "backbone_weights": None if backbone_weights is None else str(backbone_weights),
            "resumed_from": None if resume is None else str(resume),
            "init_hsnet": None if init_hsnet is None else str(init_hsnet),
            "world_size": dist.world_size,
            "pairs": {"train": len(train_pairs), "val": len(val_pairs)},
            "val_sequences": sorted({p.sequence for p in val_pairs}),
            "version": __version__,
        }
        ran = dataclasses.replace(config, device=str(torch_device))
        if dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            remove_leftovers(out_dir)  # a killed process's temporary files; rank 0 writes OUT
            write_manifest(out_dir, manifest)
            save_config(ran, out_dir / CONFIG_FILE, run=run_info)
            log.info(
                "%d training and %d validation pairs, %d process(es), device %s",
                len(train_pairs),
                len(val_pairs),
                dist.world_size,
                torch_device,
            )
        run_config = {**config_to_dict(ran), "run": run_info}
        result = fit(
            model,
            train_set,
            val_set,
            config.train,
            out_dir,
            device=torch_device,
            dist=dist,
            resume=resume_state,
            run_config=run_config,
            threads=StageThreads.resolve(config.threads).counts["training"],
        )
        if dist.is_main:
            manifest.finished = True
            write_manifest(out_dir, manifest)
    finally:
        _leave(dist)
    return JobResult(**vars(result), rank=dist.rank)


def _require_resumable(path: Path, meta: dict[str, Any], network: SamicNetConfig) -> None:
    """Refuse a checkpoint (``meta``: :func:`~samic_vos.model.checkpoint.load_samic`'s) that
    this run cannot continue: one without training state, or of another network (naming the
    settings that differ)."""
    if not meta.get("training"):
        raise UserError(
            f"{path}: cannot resume: it holds no training state (a network adapted by track "
            "or segment, or saved without it); pass a latest.pt written by samic-vos train"
        )
    changed = differences(meta["net_config"], config_to_dict(network), "network.")
    if changed:
        raise UserError(
            f"{path}: cannot resume: the checkpoint's network differs from this run's in "
            f"{', '.join(changed)}; use the run's own settings"
        )


def _leave(dist: DistInfo) -> None:
    """Leave the process group this job joined (torchrun launches)."""
    import torch.distributed as torch_dist

    if dist.world_size > 1 and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
