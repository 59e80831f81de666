"""Adapt SAMIC on the first frame when no trained checkpoint is given.

`samic-vos track` without ``--samic`` builds a fresh network and teaches its head to carry the
prompts of frame 0 between augmented views of frame 0 itself: each view is a random crop, flip
and colour jitter of the frame (:func:`samic_vos.training.train_dataset.draw_geometry`); each
object's prompts in a view are interior points of its mask in that view
(:func:`samic_vos.prompts.mask_points.interior_points`). A step predicts, for a batch of (reference
view, target view, object) triples, the target view's heat map from the reference view's, with the
saliency loss of training. The frozen backbone never changes, so every view's features are
computed once and the steps run on the head alone. `samic-vos segment` adapts the same way on
its K reference images (:func:`adapt_on_references`): views of every reference, triples
across references.

Convergence and bounds: Adam with a linear warm-up and a cosine decay of the learning rate; one
more augmented view is held out, and every ``val_every`` steps the loss of predicting it from
each training view is the validation loss. Adaptation stops at ``steps``, on a plateau of the
validation loss, or when the steps have taken ``max_seconds``; the head ends with the weights of
its best validation loss.

Interruptions: with a ``state_path`` the whole state is saved (atomically) as it goes, and a
later call with the same path, frame, mask, network and config continues it. **Identical**: the
adapted weights are a function of the inputs, the config and the number of steps done; a resumed
adaptation gives bit-for-bit the weights of an uninterrupted one that did as many steps (on
the CPU; on a GPU as far as its kernels are deterministic). Steps
and plateaus do not depend on the machine; the time bound does, so the step count reached is
returned (``metrics["steps"]``) and kept in the state: calling again with a finished state
does no step and returns the same weights, and ``steps: N`` with ``max_seconds: null``
reproduces a time-bounded run of N steps anywhere (a plateau stop before N aside).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from samic_vos.data.mask_io import object_ids
from samic_vos.model.samic_net import SamicNet
from samic_vos.runtime.config import config_to_dict, require
from samic_vos.runtime.console import bar
from samic_vos.runtime.stage_threads import torch_threads
from samic_vos.training.adaptation_state import fingerprint, load_state, save_state
from samic_vos.training.adaptation_views import View, all_triples, draw_views, make_view, view_loss
from samic_vos.training.losses import LossWeights
from samic_vos.training.train_dataset import AugmentConfig

log = logging.getLogger(__name__)

# Validation triples decoded at once (no gradients); more references only add chunks.
VALIDATION_CHUNK = 32


@dataclass
class AdaptationConfig:
    """First-frame adaptation (the paper trains offline; this is our bounded stand-in)."""

    views: int = 8  # training views of frame 0, or of each reference (view 0 is the image)
    steps: int = 150  # at most this many optimisation steps (0: none, the untrained head)
    batch_size: int = 4
    lr: float = 1e-3  # Adam's peak learning rate, as training
    warmup_steps: int = 5  # linear warm-up of the learning rate (paper silent)
    final_lr_fraction: float = 0.05  # cosine decay to this share of lr at `steps`
    val_every: int = 10  # steps between validation losses (one held-out augmented view)
    patience: int = 4  # stop after this many validations without improvement; 0: never
    min_delta: float = 0.01  # a validation loss must drop by this much to count as better
    # Time bound on the steps (set-up excluded), seconds; None: none.
    max_seconds: float | None = 300.0
    checkpoint_seconds: float = 30.0  # with a state path: save at most this often; 0: each step
    points_per_object: int = 3  # interior points per object and view (its prompts)
    seed: int = 0
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(min_scale=0.7))
    loss: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        at_least = {"views": 2, "steps": 0, "batch_size": 1, "val_every": 1}
        at_least.update(points_per_object=1, warmup_steps=0, patience=0)
        for key, low in at_least.items():
            value = getattr(self, key)
            require(value >= low, key, f"an integer >= {low}", value)
        require(self.lr > 0, "lr", "a number > 0", self.lr)
        fraction = self.final_lr_fraction
        require(0 <= fraction <= 1, "final_lr_fraction", "in [0, 1]", fraction)
        require(self.min_delta >= 0, "min_delta", "a number >= 0", self.min_delta)
        bound = self.max_seconds
        require(bound is None or bound > 0, "max_seconds", "> 0 or null (no bound)", bound)
        every = self.checkpoint_seconds
        require(every >= 0, "checkpoint_seconds", "a number >= 0", every)


def lr_factor(config: AdaptationConfig, step: int) -> float:
    """The learning rate of step ``step`` (0-based) as a share of ``config.lr``: linear
    warm-up over ``warmup_steps``, then a cosine from 1 to ``final_lr_fraction`` at ``steps``."""
    if step < config.warmup_steps:
        return (step + 1) / (config.warmup_steps + 1)
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    low = config.final_lr_fraction
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))


def adapt_on_first_frame(
    net: SamicNet,
    rgb: np.ndarray,
    ids: np.ndarray,
    config: AdaptationConfig,
    *,
    heat_sigma: float,
    device: torch.device,
    progress: bool = True,
    state_path: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train ``net``'s head in place on views of one frame (see the module docstring).

    Args:
        net: the network, on ``device``; its head is trained, its backbone stays frozen.
        rgb: frame 0, uint8 (H, W, 3) RGB.
        ids: frame 0's id map, uint8 (H, W): 0 background, 255 void, other values objects.
        heat_sigma: σ of the prompt Gaussians (the tracker's, so both draw the same maps).
        state_path: where the adaptation saves its state to continue after an interruption
            (``None``: nowhere); an existing state of the same adaptation is continued.
        threads: torch threads of the adaptation (views and steps), restored after
            (``None``: the current count; jobs pass their ``threads.adaptation``).

    Returns:
        Plain values: ``steps`` done, ``stop`` (``"steps"``, ``"plateau"`` or ``"time"``),
        ``best_step`` and ``best_val_loss`` (the weights kept), ``seconds`` spent in steps
        (their validations included; over every call on a state), ``seconds_per_step``,
        ``setup_seconds`` (views), ``steps_this_call`` (0 for a finished state), ``history``
        (the loss curve: per validation, ``step``, ``lr``, mean ``train_loss`` since the
        previous one, ``val_loss``) and the mean training loss terms (``loss``, ``kld``, ...)
        of the last interval.
        Empty if no object is in frame 0.
    """
    return adapt_on_references(
        net,
        [(rgb, ids)],
        config,
        heat_sigma=heat_sigma,
        device=device,
        progress=progress,
        state_path=state_path,
        threads=threads,
    )


def adapt_on_references(
    net: SamicNet,
    references: Sequence[tuple[np.ndarray, np.ndarray]],
    config: AdaptationConfig,
    *,
    heat_sigma: float,
    device: torch.device,
    progress: bool = True,
    state_path: str | os.PathLike[str] | None = None,
    what: str | None = None,
    threads: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """:func:`adapt_on_first_frame` on K labelled images (the few-shot references).

    ``references``: (rgb (H_k, W_k, 3) uint8, ids (H_k, W_k) uint8) pairs. Each gets
    ``config.views`` training views and one held-out view; a step's triples pair any two
    training views (across references too) where the object appears in both; the validation
    loss predicts every held-out view from every training view. ``what`` names the images in
    the log and progress bar (default: "frame 0" for one, "the K references" for more).
    One reference adapts exactly as :func:`adapt_on_first_frame` always did. ``threads``: as
    :func:`adapt_on_first_frame`'s. ``on_step(done, steps)``: called before the first step
    and after each (SAMBOX's progress display).
    """
    if not references:
        raise ValueError("adaptation needs at least one reference")
    what = what or ("frame 0" if len(references) == 1 else f"the {len(references)} references")
    # Seeded inside (the same steps every run); the caller's torch RNG is given back after.
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    with torch_threads(threads), torch.random.fork_rng(devices=rng_devices):
        return _adapt(
            net, references, config, heat_sigma, device, progress, state_path, what, on_step
        )


def _adapt(
    net: SamicNet,
    references: Sequence[tuple[np.ndarray, np.ndarray]],
    config: AdaptationConfig,
    heat_sigma: float,
    device: torch.device,
    progress: bool,
    state_path: str | os.PathLike[str] | None,
    what: str,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    setup_start = time.perf_counter()
    initial = fingerprint(
        config_to_dict(config),
        config_to_dict(net.config),
        [(rgb, ids) for rgb, ids in references],
        net.head.state_dict(),
        heat_sigma,
    )
    saved = load_state(state_path, initial) if state_path is not None else None
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    present = sorted(set().union(*(object_ids(ids) for _, ids in references)))
    points = config.points_per_object
    views, held_out = [], []
    for rgb, ids in references:
        drawn = [
            make_view(net, rgb, ids, present, geometry, factors, points, heat_sigma, device)
            for geometry, factors in draw_views(rng, rgb, ids, config.views, config.augment)
        ]
        views += drawn[:-1]
        held_out.append(drawn[-1])
    triples = all_triples(views, views, present)
    val_batch = all_triples(views, held_out, present)
    if not triples or not val_batch:
        return {}
    optimizer = torch.optim.Adam(net.head.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s))
    run: dict[str, Any] = {
        "step": 0,
        "seconds": 0.0,
        "best_val_loss": math.inf,
        "best_step": 0,
        "stale": 0,
        "history": [],
        "stop": None,
        "terms": {},
    }
    best_head = _copy_state(net.head)
    if saved is not None:
        net.head.load_state_dict(saved["head"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"])
        best_head, run = saved["best_head"], saved["progress"]
        log.info("continuing the adaptation saved in %s after %d steps", state_path, run["step"])
    setup_seconds = time.perf_counter() - setup_start

    def save() -> None:
        save_state(
            state_path,
            {
                "fingerprint": initial,
                "head": _copy_state(net.head),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "best_head": best_head,
                "progress": run,
            },
        )

    def validate() -> None:
        nonlocal best_head
        val_loss = validation_loss(net, views, held_out, val_batch, config.loss)
        pending = run.pop("pending", [])
        mean_train = float(np.mean([t["loss"] for t in pending])) if pending else None
        if pending:
            run["terms"] = {k: float(np.mean([t[k] for t in pending])) for k in pending[0]}
        run["history"].append(
            {
                "step": run["step"],
                "lr": float(optimizer.param_groups[0]["lr"]),
                "train_loss": mean_train,
                "val_loss": val_loss,
            }
        )
        if val_loss < run["best_val_loss"] - config.min_delta:
            run["best_val_loss"], run["best_step"], run["stale"] = val_loss, run["step"], 0
            best_head = _copy_state(net.head)
        else:
            run["stale"] += 1
            if config.patience and run["stale"] >= config.patience:
                run["stop"] = "plateau"

    net.head.train()
    if run["step"] == 0 and not run["history"]:
        with torch.no_grad():
            validate()  # the untrained head's loss: the baseline of the curve
    steps_bar = bar(
        total=config.steps,
        initial=run["step"],
        desc=f"adapting SAMIC on {what}",
        disable=not progress or run["stop"] is not None,
    )
    last_save, first_step = time.monotonic(), run["step"]
    if on_step is not None:
        on_step(run["step"], config.steps)
    while run["stop"] is None:
        if run["step"] >= config.steps:
            run["stop"] = "steps"
        elif config.max_seconds is not None and run["seconds"] >= config.max_seconds:
            run["stop"] = "time"
            if run["history"][-1]["step"] != run["step"]:
                with torch.no_grad():
                    validate()  # the steps since the last validation count too
                run["stop"] = "time"  # even if that validation saw a plateau
        if run["stop"] is not None:
            if state_path is not None:
                save()
            break
        start = time.perf_counter()
        chosen = [triples[i] for i in rng.integers(0, len(triples), config.batch_size)]
        loss, terms = view_loss(net, views, views, chosen, config.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        run["step"] += 1
        run.setdefault("pending", []).append(terms)
        if run["step"] % config.val_every == 0 or run["step"] == config.steps:
            with torch.no_grad():
                validate()
        run["seconds"] += time.perf_counter() - start
        if run["step"] == first_step + 1:
            _log_eta(time.perf_counter() - start, run, config, what)
        steps_bar.update(1)
        if on_step is not None:
            on_step(run["step"], config.steps)
        steps_bar.set_postfix(
            {"loss": f"{terms['loss']:.3f}", "best val": f"{run['best_val_loss']:.3f}"}
        )
        if state_path is not None and (
            run["stop"] is not None or time.monotonic() - last_save >= config.checkpoint_seconds
        ):
            save()
            last_save = time.monotonic()
    steps_bar.close()
    net.head.load_state_dict(best_head)
    net.head.eval()
    log.info(
        "adaptation stopped (%s) after %d steps; kept step %d (validation loss %.4f)",
        run["stop"],
        run["step"],
        run["best_step"],
        run["best_val_loss"],
    )
    return {
        "steps": run["step"],
        "stop": run["stop"],
        "best_step": run["best_step"],
        "best_val_loss": run["best_val_loss"],
        "seconds": run["seconds"],
        "seconds_per_step": run["seconds"] / max(run["step"], 1),
        "setup_seconds": setup_seconds,
        "steps_this_call": run["step"] - first_step,
        "history": run["history"],
        **run["terms"],
    }


def validation_loss(
    net: SamicNet,
    views: list[View],
    held_out: list[View],
    batch: list[tuple[int, int, int]],
    weights: LossWeights,
) -> float:
    """The mean loss of ``batch`` (reference view, held-out view, object) triples, computed
    :data:`VALIDATION_CHUNK` triples at a time (memory stays bounded with K references; the
    loss is a batch mean, so the chunks' size-weighted mean is the whole batch's)."""
    total = 0.0
    for start in range(0, len(batch), VALIDATION_CHUNK):
        chunk = batch[start : start + VALIDATION_CHUNK]
        total += view_loss(net, views, held_out, chunk, weights)[1]["loss"] * len(chunk)
    return total / len(batch)


def _log_eta(step_seconds: float, run: dict[str, Any], config: AdaptationConfig, what: str) -> None:
    """Say, after the first step, how long the adaptation will take at most."""
    left = step_seconds * (config.steps - run["step"])
    if config.max_seconds is not None:
        left = min(left, max(config.max_seconds - run["seconds"], 0.0))
    bound = "none" if config.max_seconds is None else f"{config.max_seconds:g} s"
    log.info(
        "adapting SAMIC on %s: %.2f s per step, at most %d steps (time bound %s, earlier "
        "on a plateau): ETA %d min %02d s",
        what,
        step_seconds,
        config.steps,
        bound,
        *divmod(round(left), 60),
    )


def _copy_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy({k: v.detach() for k, v in module.state_dict().items()})
