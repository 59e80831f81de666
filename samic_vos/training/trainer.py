"""The SAMIC training loop: Adam, early stopping on a validation loss, checkpoints, DDP.

:func:`fit` trains the learnable part of a :class:`~samic_vos.model.samic_net.SamicNet` (the
backbone is frozen) on a :class:`~samic_vos.training.train_dataset.PairDataset`. Each epoch it
trains on every pair once, measures the loss on the validation pairs, writes ``latest.pt`` (and
``best.pt`` when the validation loss improved) and ``history.json`` into the output folder, and
stops after ``patience`` epochs without improvement.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every process trains on its own
shard of the pairs and DistributedDataParallel averages the gradients: the global batch is
``batch_size × world size`` and only rank 0 writes files. Because an epoch's order comes from
``seed + epoch`` and each pair's augmentation from ``(seed, epoch, index)``, two processes with
batch b train exactly like one process with batch 2b (up to float rounding), and ``--resume``
continues as if never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from samic_vos.model.checkpoint import save_samic
from samic_vos.model.samic_net import SamicNet
from samic_vos.runtime.atomic import atomic_path, atomic_write_text
from samic_vos.runtime.config import require, require_choice
from samic_vos.runtime.console import bar
from samic_vos.runtime.stage_threads import torch_threads
from samic_vos.training.losses import TERMS as LOSS_TERMS
from samic_vos.training.losses import LossWeights, saliency_loss
from samic_vos.training.train_dataset import PairDataset

_log = logging.getLogger(__name__)

LATEST, BEST, HISTORY = "latest.pt", "best.pt", "history.json"
CACHE_DTYPES = ("float16", "bfloat16", "float32")
TERMS = ("loss", *LOSS_TERMS)  # what saliency_loss logs, in the order logs show them


@dataclass
class TrainConfig:
    """Optimisation settings (the issue's numbers)."""

    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 4  # pairs per process and step; the global batch is × the world size
    max_epochs: int = 300
    patience: int = 10  # early stopping: epochs without a better validation loss
    min_delta: float = 0.0  # an improvement must lower the validation loss by more than this
    seed: int = 0  # python, numpy and torch seeds; epoch order and augmentation derive from it
    loss: LossWeights = field(default_factory=LossWeights)
    # Backbone features of pairs that cannot change (validation pairs; training pairs when
    # augmentation is off) are computed once and kept in memory; float16 halves the memory.
    cache_features: bool = True
    cache_dtype: str = "float16"
    num_workers: int = 0  # data-loader worker processes per training process

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", "a number > 0", self.lr)
        require(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        require(self.max_epochs >= 1, "max_epochs", "an integer >= 1", self.max_epochs)
        require(self.patience >= 1, "patience", "an integer >= 1", self.patience)
        require(self.min_delta >= 0, "min_delta", "a number >= 0", self.min_delta)
        require(self.num_workers >= 0, "num_workers", "an integer >= 0", self.num_workers)
        require_choice("cache_dtype", self.cache_dtype, CACHE_DTYPES)


@dataclass
class DistInfo:
    """This process's place in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainResult:
    """What :func:`fit` did. ``history``: one dict of metrics per completed epoch."""

    epochs: int
    best_epoch: int
    best_loss: float
    stopped_early: bool
    history: list[dict[str, float]]
    out_dir: Path


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun job described by the environment; one process when there is none.

    Uses NCCL on CUDA and gloo on the CPU; on CUDA each process takes ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not torch_dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        torch_dist.init_process_group(backend=backend, rank=info.rank, world_size=world_size)
    return info


def _all_sum(values: list[float], dist: DistInfo, device: torch.device) -> list[float]:
    """``values`` summed over all processes (unchanged in a one-process job)."""
    if dist.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch_dist.all_reduce(t)
    return t.tolist()


class CachedFeatures(Dataset):
    """A deterministic :class:`PairDataset` whose images are replaced by backbone features.

    Items carry ``ref_feats`` and ``tgt_feats`` (lists of 13 tensors, ``cache_dtype``) instead
    of ``ref_image``/``tgt_image``. Each frame is run through the backbone once, ``chunk``
    frames per batch.
    """

    def __init__(
        self,
        base: PairDataset,
        model: SamicNet,
        device: torch.device,
        dtype: str,
        show: bool,
        chunk: int = 16,
    ) -> None:
        if not base.deterministic:
            raise ValueError("only a dataset without augmentation can be cached")
        self.base = base
        self.features: dict[str, list[Tensor]] = {}
        store = getattr(torch, dtype)
        pending: dict[str, Tensor] = {}

        def flush() -> None:
            with torch.no_grad():
                feats = model.extract_features(torch.stack(list(pending.values())).to(device))
            for i, key in enumerate(pending):
                self.features[key] = [f[i].to("cpu", store) for f in feats]
            pending.clear()

        for index in bar(range(len(base)), desc="caching features", disable=not show):
            keys = base.frame_keys(index)
            if all(k in self.features or k in pending for k in keys):
                continue
            item = base.item(index, with_images=True)
            for key, name in zip(keys, ("ref_image", "tgt_image"), strict=True):
                if key not in self.features and key not in pending:
                    pending[key] = item[name]
            if len(pending) >= chunk:
                flush()
        if pending:
            flush()

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, object]:
        item = self.base.item(index, with_images=False)
        ref_key, tgt_key = self.base.frame_keys(index)
        item["ref_feats"], item["tgt_feats"] = self.features[ref_key], self.features[tgt_key]
        return item


def _predict(head: nn.Module, model: SamicNet, batch: dict[str, Any]) -> Tensor:
    """Predicted heat map (B, 1, h, w) in [0, 1] of a batch; ``head`` is ``model.head``, or its
    DistributedDataParallel wrapper (the frozen backbone runs outside it, without gradients).
    """
    if "ref_feats" in batch:
        ref_feats, tgt_feats = batch["ref_feats"], batch["tgt_feats"]
    else:
        ref_feats = model.extract_features(batch["ref_image"])
        tgt_feats = model.extract_features(batch["tgt_image"])
    return torch.sigmoid(head(ref_feats, batch["ref_heat"], tgt_feats))


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    def move(value: Any) -> Any:
        if isinstance(value, Tensor):
            return value.to(device, torch.float32 if value.is_floating_point() else None)
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    return {key: move(value) for key, value in batch.items()}


def _maybe_cache(
    dataset: PairDataset, model: SamicNet, config: TrainConfig, device: torch.device, show: bool
) -> Dataset:
    if config.cache_features and dataset.deterministic and len(dataset):
        return CachedFeatures(dataset, model, device, config.cache_dtype, show)
    return dataset


def _run_epoch(
    head: nn.Module,
    model: SamicNet,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer | None,
    config: TrainConfig,
    device: torch.device,
    progress: tqdm,
    label: str = "",
) -> dict[str, float]:
    """One pass; returns the per-pair sums of the loss terms and ``count`` on this process.
    ``progress`` shows the running means, named ``label`` + term (``"val_"``: validation)."""
    sums = dict.fromkeys(TERMS, 0.0)
    count = 0
    for batch in loader:
        batch = _to_device(batch, device)
        if optimizer is None:
            with torch.no_grad():
                pred = _predict(head, model, batch)
        else:
            pred = _predict(head, model, batch)
        loss, terms = saliency_loss(pred, batch["tgt_heat"], batch["tgt_fix"], config.loss)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        size = pred.shape[0]
        count += size
        for key in TERMS:
            sums[key] += terms[key] * size
        progress.update(1)
        shown = {f"{label}{k}": f"{v / count:.3f}" for k, v in sums.items()}
        progress.set_postfix(shown, refresh=False)
    sums["count"] = float(count)
    return sums


def _mean_terms(sums: dict[str, float], dist: DistInfo, device: torch.device) -> dict[str, float]:
    """Per-pair means of the loss terms over all processes."""
    totals = _all_sum([sums[k] for k in TERMS] + [sums["count"]], dist, device)
    count = max(totals[-1], 1.0)
    return {k: v / count for k, v in zip(TERMS, totals[:-1], strict=True)}


def fit(
    model: SamicNet,
    train_set: PairDataset,
    val_set: PairDataset | None,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    device: torch.device | None = None,
    dist: DistInfo | None = None,
    resume: dict[str, Any] | None = None,
    run_config: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Train ``model`` in place; returns the run's summary.

    Args:
        model: the network; only its parameters with ``requires_grad`` are trained.
        train_set, val_set: training and validation pairs (``val_set`` None or empty: the
            training loss decides early stopping and the best checkpoint instead).
        config: optimisation settings; ``config.max_epochs`` counts the epochs of the whole run,
            those before a resume included.
        out_dir: folder for ``latest.pt``, ``best.pt`` and ``history.json`` (rank 0 only).
        device: where to train (CPU if None). dist: this process's rank (one process if None).
        resume: the ``training`` entry of an earlier run's checkpoint (whose weights ``model``
            already holds): its optimizer state, epoch, early-stopping state and history.
        run_config: the job's resolved configuration, stored in the checkpoints.
        log: receives one line per event (default: stderr, rank 0 only).
        threads: torch threads of the training, restored after (``None``: the current
            count; the train job passes its ``threads.training``).
    """
    with torch_threads(threads):
        return _fit(
            model, train_set, val_set, config, out_dir, device, dist, resume, run_config, log
        )


def _fit(
    model: SamicNet,
    train_set: PairDataset,
    val_set: PairDataset | None,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    device: torch.device | None,
    dist: DistInfo | None,
    resume: dict[str, Any] | None,
    run_config: dict[str, Any] | None,
    log: Callable[[str], None] | None,
) -> TrainResult:
    device = device or torch.device("cpu")
    dist = dist or DistInfo()
    out_dir = Path(out_dir)
    show = dist.is_main
    if log is None:

        def log(line: str) -> None:
            _log.info(line)

    emit = log if show else (lambda line: None)
    seed_everything(config.seed)
    model.to(device)
    train_data = _maybe_cache(train_set, model, config, device, show)
    val_data = _maybe_cache(val_set, model, config, device, show) if val_set else None
    head: nn.Module = model.head
    if dist.world_size > 1:
        ids = [dist.local_rank] if device.type == "cuda" else None
        head = nn.parallel.DistributedDataParallel(head, device_ids=ids)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    state: dict[str, Any] = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "bad_epochs": 0}
    history: list[dict[str, float]] = []
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        state, history = dict(resume["state"]), list(resume["history"])
        emit(f"resuming after epoch {state['epoch']}")
    sampler = DistributedSampler(
        train_data, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=config.seed
    )
    loader = DataLoader(
        train_data, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers
    )
    val_loader = None
    if val_data is not None:
        shard = list(range(dist.rank, len(val_data), dist.world_size))
        val_loader = DataLoader(
            torch.utils.data.Subset(val_data, shard),
            batch_size=config.batch_size,
            num_workers=config.num_workers,
        )
    if show:
        out_dir.mkdir(parents=True, exist_ok=True)
    while state["epoch"] < config.max_epochs and state["bad_epochs"] < config.patience:
        epoch = state["epoch"]
        train_data.set_epoch(epoch)
        sampler.set_epoch(epoch)
        total = len(loader) + (len(val_loader) if val_loader else 0)
        with bar(total=total, desc=f"epoch {epoch + 1}", disable=not show) as epoch_bar:
            model.train()
            sums = _run_epoch(head, model, loader, optimizer, config, device, epoch_bar)
            metrics = {f"train_{k}": v for k, v in _mean_terms(sums, dist, device).items()}
            if val_loader is not None:
                model.eval()
                sums = _run_epoch(
                    head, model, val_loader, None, config, device, epoch_bar, label="val_"
                )
                metrics.update({f"val_{k}": v for k, v in _mean_terms(sums, dist, device).items()})
        monitored = metrics.get("val_loss", metrics["train_loss"])
        improved = monitored < state["best_loss"] - config.min_delta
        state["epoch"] = epoch + 1
        if improved:
            state.update(best_loss=monitored, best_epoch=epoch + 1, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        history.append({"epoch": epoch + 1, **metrics})
        emit(
            f"epoch {epoch + 1}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            + (" (best)" if improved else f" ({state['bad_epochs']} without improvement)")
        )
        if show:
            _save(out_dir, model, optimizer, state, history, run_config, best=improved)
    stopped_early = state["bad_epochs"] >= config.patience
    if stopped_early:
        emit(f"early stop: no improvement in {config.patience} epochs")
    return TrainResult(
        epochs=state["epoch"],
        best_epoch=state["best_epoch"],
        best_loss=state["best_loss"],
        stopped_early=stopped_early,
        history=history,
        out_dir=out_dir,
    )


def _save(
    out_dir: Path,
    model: SamicNet,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    history: list[dict[str, float]],
    run_config: dict[str, Any] | None,
    best: bool,
) -> None:
    """Write ``best.pt`` (when the epoch improved), ``history.json`` and then ``latest.pt``,
    each atomically. ``latest.pt`` comes last: a resumed run continues after its epoch, so a
    process killed between these writes redoes the epoch and writes the others again, where
    written first the others would stay one epoch behind (``best.pt`` not the best epoch's
    network, ``history.json`` without its last epoch)."""
    metrics = {**history[-1], "best_loss": state["best_loss"], "best_epoch": state["best_epoch"]}
    training = {"state": dict(state), "optimizer": optimizer.state_dict(), "history": history}
    if best:
        save_samic(out_dir / BEST, model, config=run_config, metrics=metrics, training=training)
    atomic_write_text(out_dir / HISTORY, json.dumps(history, indent=1) + "\n")
    if best:  # the same content: copy rather than serialise (and verify) it again
        with atomic_path(out_dir / LATEST) as tmp:
            shutil.copyfile(out_dir / BEST, tmp)
    else:
        save_samic(out_dir / LATEST, model, config=run_config, metrics=metrics, training=training)
