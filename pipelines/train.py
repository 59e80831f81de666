"""The training job: config → training pairs → datasets → trainer → checkpoints.

:func:`run_training` is what ``samic-vos train`` runs (once per process under ``torchrun``).
Validation (early stopping, best checkpoint) uses held-out *sequences* of the training data,
never the DAVIS val split, so the val split stays unseen for benchmarks; neighbouring frames of
one video are near-duplicates, so pairs of one sequence never sit on both sides of the split.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from samic_vos import __version__
from samic_vos.config import config_to_dict, save_config
from samic_vos.errors import UserError
from samic_vos.optical_flow import FlowConfig
from samic_vos.samic_net import SamicNetConfig
from samic_vos.train_dataset import AugmentConfig, PairDataset
from samic_vos.trainer import DistInfo, TrainConfig, TrainResult, fit, init_distributed
from samic_vos.training_pairs import DEFAULT_POINTS_PER_OBJECT, TrainingPair

CONFIG_FILE = "config.yaml"


@dataclass
class DataConfig:
    """Where the training pairs come from and how validation is held out."""

    year: str = "2016"  # DAVIS year
    split: str = "train"  # DAVIS ImageSets split to train on
    resolution: str = "480p"
    sequences: list[str] | None = None  # DAVIS sequences to use (None: the whole split)
    points_per_object: int = DEFAULT_POINTS_PER_OBJECT  # ground-truth points per mask
    sambox_pairing: str = "sequence"  # SAMBOX: "sequence" (videos) or "label" (images)
    # Share of sequences (SAMBOX label pairing: labels) held out for validation, at least one
    # when there are two or more; with a single one, every k-th pair, k = round(1/val_fraction).
    val_fraction: float = 0.125

    def __post_init__(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise UserError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.points_per_object < 1:
            raise UserError(f"data.points_per_object must be >= 1, got {self.points_per_object}")


@dataclass
class TrainJobConfig:
    """Everything ``samic-vos train`` uses; YAML files override these defaults."""

    net: SamicNetConfig = field(default_factory=SamicNetConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    heat_sigma: float = 0.02  # σ of the heat-map Gaussians, share of the heat map's longer side


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


def load_pairs(
    config: TrainJobConfig, davis_root: str | None, sambox: str | None, show: bool
) -> list[TrainingPair]:
    """The training pairs of the job's data source (exactly one of ``davis_root``/``sambox``)."""
    from samic_vos.training_pairs import pairs_from_davis, pairs_from_sambox

    if (davis_root is None) == (sambox is None):
        raise UserError("give exactly one data source: --davis-root ROOT or --sambox DIR")
    if sambox is not None:
        pairs = pairs_from_sambox(sambox, pairing=config.data.sambox_pairing)
    else:
        from samic_vos.davis import DavisDataset

        dataset = DavisDataset(
            davis_root, config.data.year, config.data.split, config.data.resolution
        )
        pairs = pairs_from_davis(
            dataset,
            config.flow,
            points_per_object=config.data.points_per_object,
            sequences=config.data.sequences,
            progress=show,
        )
    if not pairs:
        raise UserError("no training pair found: check the data source and the flow settings")
    return pairs


def run_training(
    config: TrainJobConfig,
    *,
    out_dir: str | os.PathLike[str],
    davis_root: str | None = None,
    sambox: str | None = None,
    resume: str | os.PathLike[str] | None = None,
    backbone_weights: str | os.PathLike[str] | None = None,
    init_hsnet: str | os.PathLike[str] | None = None,
    device: str = "auto",
) -> JobResult:
    """Train SAMIC as ``config`` says and write the run into ``out_dir`` (rank 0 only).

    ``resume``: a checkpoint of an earlier run with the same network config; training goes
    on from its epoch (``config.train.max_epochs`` counts the epochs of the whole run).
    ``backbone_weights``: a ResNet-50 ImageNet state dict (``None``: the weights registry).
    ``init_hsnet``: an HSNet ResNet-50 checkpoint whose learner initialises the head of a new
    run (:func:`samic_vos.hsnet_weights.load_hsnet_learner`); not with ``resume``.
    """
    from samic_vos.devices import select_device
    from samic_vos.samic_checkpoint import load_samic
    from samic_vos.samic_net import build_samic
    from samic_vos.trainer import seed_everything

    if resume is not None and init_hsnet is not None:
        raise UserError("init_hsnet starts a new run; a resumed run has its weights: drop one")
    torch_device = select_device(device)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder; choose another --output")
    dist = init_distributed(torch_device)
    if torch_device.type == "cuda" and dist.world_size > 1:
        torch_device = torch.device("cuda", dist.local_rank)
    try:
        if config.net.backbone == "random" and dist.is_main:
            print(
                "samic-vos: WARNING: training on a RANDOMLY INITIALISED backbone "
                "(net.backbone: random, recorded in config.yaml); not for real use",
                file=sys.stderr,
            )
        if resume is not None:
            model, meta = load_samic(resume, backbone_weights=backbone_weights)
            if meta["net_config"] != config_to_dict(config.net) or not meta.get("training"):
                raise UserError(
                    f"{resume}: cannot resume: the checkpoint's network config differs from "
                    "this run's, or it holds no training state; use the run's own settings"
                )
            resume_state = meta["training"]
        else:
            seed_everything(config.train.seed)  # the head's initial weights
            model, resume_state = build_samic(config.net, backbone_weights), None
            if init_hsnet is not None:
                from samic_vos.hsnet_weights import load_hsnet_learner

                load_hsnet_learner(model.head, init_hsnet)
        pairs = load_pairs(config, davis_root, sambox, dist.is_main)
        train_pairs, val_pairs = split_pairs(pairs, config.data.val_fraction, config.train.seed)
        size = config.net.input_size
        resize = config.net.resize
        train_set = PairDataset(
            train_pairs, size, config.augment, config.heat_sigma, config.train.seed, resize
        )
        val_set = PairDataset(
            val_pairs, size, AugmentConfig(enabled=False), config.heat_sigma, resize=resize
        )
        run_info = {
            "source": {"davis_root": davis_root, "sambox": sambox},
            "backbone_weights": None if backbone_weights is None else str(backbone_weights),
            "resumed_from": None if resume is None else str(resume),
            "init_hsnet": None if init_hsnet is None else str(init_hsnet),
            "world_size": dist.world_size,
            "pairs": {"train": len(train_pairs), "val": len(val_pairs)},
            "val_sequences": sorted({p.sequence for p in val_pairs}),
            "version": __version__,
        }
        if dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, out_dir / CONFIG_FILE, run=run_info)
            print(
                f"samic-vos: {len(train_pairs)} training and {len(val_pairs)} validation pairs, "
                f"{dist.world_size} process(es), device {torch_device}",
                file=sys.stderr,
            )
        run_config = {**config_to_dict(config), "run": run_info}
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
        )
    finally:
        _leave(dist)
    return JobResult(**vars(result), rank=dist.rank)


def _leave(dist: DistInfo) -> None:
    """Leave the process group this job joined (torchrun launches)."""
    import torch.distributed as torch_dist

    if dist.world_size > 1 and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
