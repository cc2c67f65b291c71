"""The machinery every phase shares: one epoch of gradient accumulation, prediction (sharded
over processes), and the epoch loop with early stopping, LR scheduling, per-epoch checkpoints
and resume.
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from bids_amyloid.models.device import autocast
from bids_amyloid.train.checkpoint import (
    load_checkpoint,
    load_trainable_state,
    save_checkpoint,
    trainable_state,
)
from bids_amyloid.train.data import Batch, make_loader
from bids_amyloid.train.distributed import (
    DistContext,
    average_gradients,
    barrier,
    eval_sampler,
    gather_objects,
)
from bids_amyloid.train.losses import LossTerms
from bids_amyloid.train.prefix import PrefixCache
from bids_amyloid.train.runtime import evaluating

log = logging.getLogger("bids_amyloid.train")


@dataclass
class TrainEnv:
    """What the phases of one (contrast, fold) share."""

    device: torch.device
    dist: DistContext
    work_dir: Path
    """Checkpoint folder of this fold (``<work>/train/<contrast>/fold-<k>``)."""
    seed: int
    """Stream seed of this (contrast, fold)."""
    workers: int = 0
    bf16: bool = True
    resume: bool = False
    monitor: str = "f1"
    threshold_rule: str = "f1"
    prefix_cache: PrefixCache | None = None
    """Frozen-prefix tokens of un-augmented inputs (None: off); shared by the folds of a run."""

    def inputs(self, net: nn.Module, batch: Batch, modality: str, cacheable: bool) -> torch.Tensor:
        """The batch's ``modality`` images, or their frozen-prefix tokens when ``cacheable`` (un-augmented)."""
        if self.prefix_cache is not None and cacheable:
            return self.prefix_cache.inputs(net, batch, modality)
        return batch.images(modality)

    def to_device(self, batch: Batch) -> Batch:
        return batch.to(self.device, non_blocking=True)


def train_epoch(*, env: TrainEnv, loader, step: Callable[[Batch], LossTerms], optimizer,
                params: Sequence[nn.Parameter], accum: int, clip: float, desc: str) -> dict[str, float]:
    """One pass over ``loader``: ``step(batch)`` gives the loss of a micro-batch; gradients are
    accumulated over ``accum`` micro-batches, averaged across processes, clipped, applied."""
    totals: dict[str, float] = defaultdict(float)
    n_batches = len(loader)
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(loader, desc=desc, leave=False, disable=None if env.dist.is_main else True)
    for i, batch in enumerate(bar):
        with autocast(env.device, cuda_bf16=env.bf16):
            terms = step(env.to_device(batch))
        (terms.total / accum).backward()
        totals["loss"] += float(terms.total.detach())
        for k, v in terms.parts.items():
            totals[k] += v
        if (i + 1) % accum == 0 or i + 1 == n_batches:
            average_gradients(params, env.dist)
            torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{totals['loss'] / (i + 1):.4f}")
    # mean over batches, then over processes
    means = {k: v / max(1, n_batches) for k, v in totals.items()}
    gathered = gather_objects(means, env.dist)
    keys = sorted({k for g in gathered for k in g})
    return {k: float(np.mean([g.get(k, 0.0) for g in gathered])) for k in keys}


def infer(net: nn.Module, dataset, mode: str, env: TrainEnv, *, batch_size: int) -> dict[str, np.ndarray]:
    """Probabilities (and pooled embeddings) for every item of an un-augmented ``dataset``.

    ``mode``: 'teacher' (MRI + PET), 'student' (MRI) or 'pet' (PET self-attention embedding, no
    probability). Each process predicts a share; the results are gathered on every process.
    Inputs go through the frozen-prefix cache when the run has one.
    """
    if mode not in ("teacher", "student", "pet"):
        raise ValueError(f"unknown mode {mode!r}")
    sampler = eval_sampler(dataset, env.dist)
    loader = make_loader(dataset, batch_size=batch_size, sampler=sampler, workers=env.workers, seed=env.seed,
                         pin_memory=env.device.type == "cuda")
    rows: list[tuple[int, float, np.ndarray]] = []
    with evaluating(net):
        for batch in loader:
            batch = env.to_device(batch)
            idx = batch.index.tolist()
            with autocast(env.device, cuda_bf16=env.bf16):
                if mode == "pet":
                    pooled = net.pet_pooled(env.inputs(net, batch, "pet", True))
                    logit = torch.full((len(idx),), math.nan, device=pooled.device)
                else:
                    mri = env.inputs(net, batch, "mri", True)
                    if mode == "teacher":
                        out = net.teacher(mri, env.inputs(net, batch, "pet", True))
                    else:
                        out = net.student(mri)
                    logit, pooled = out.logit, out.pooled
            prob = torch.sigmoid(logit.float()).cpu().numpy()
            pooled_np = pooled.float().cpu().numpy()
            rows += [(i, float(p), e) for i, p, e in zip(idx, prob, pooled_np)]
    merged = {i: (p, e) for part in gather_objects(rows, env.dist) for i, p, e in part}  # drops sampler padding
    order = sorted(merged)
    if order != list(range(len(dataset))):
        raise RuntimeError(f"prediction covered {len(order)} of {len(dataset)} items")
    return {"prob": np.array([merged[i][0] for i in order]), "pooled": np.stack([merged[i][1] for i in order])}


@dataclass
class PhaseResult:
    name: str
    epochs_run: int
    best_epoch: int
    best_score: tuple[float, ...]
    history: list[dict[str, Any]]


@dataclass
class Phase:
    """What differs between phases; :func:`run_phase` does the rest."""

    name: str
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    plateau: bool
    """True: ``scheduler.step(score)`` (ReduceLROnPlateau); False: ``scheduler.step()`` per epoch."""
    max_epochs: int
    patience: int
    run_epoch: Callable[[int], dict[str, float]]
    validate: Callable[[], tuple[tuple[float, ...], dict[str, float]]]
    fingerprint: str


def run_phase(phase: Phase, env: TrainEnv) -> PhaseResult:
    """Epoch loop with early stopping on the validation score; the best epoch's tensors are
    loaded into ``phase.net`` at the end. Checkpoint after every epoch; resume from it."""
    path = env.work_dir / f"{phase.name}.pt"
    if phase.max_epochs <= 0:
        return PhaseResult(phase.name, 0, -1, (), [])
    state = load_checkpoint(path, phase.fingerprint) if env.resume else None
    start, best_score, best_epoch, best_state, bad, history = 0, None, -1, None, 0, []
    if state is not None:
        load_trainable_state(phase.net, state["model"])
        phase.optimizer.load_state_dict(state["optimizer"])
        phase.scheduler.load_state_dict(state["scheduler"])
        start, bad, history = state["epoch"], state["bad_epochs"], state["history"]
        best_score, best_epoch, best_state = tuple(state["best_score"]), state["best_epoch"], state["best_model"]
        if state["finished"]:
            load_trainable_state(phase.net, best_state)
            log.info("%s: finished earlier (best epoch %d), resumed from %s", phase.name, best_epoch, path)
            return PhaseResult(phase.name, start, best_epoch, best_score, history)
        log.info("%s: resuming after epoch %d from %s", phase.name, start, path)
    bar = tqdm(range(start, phase.max_epochs), desc=phase.name, initial=start, total=phase.max_epochs,
               disable=None if env.dist.is_main else True)
    for epoch in bar:
        losses = phase.run_epoch(epoch)
        score, val = phase.validate()
        if phase.plateau:
            phase.scheduler.step(score[0])
        else:
            phase.scheduler.step()
        if best_score is None or score > best_score:
            best_score, best_epoch, best_state, bad = score, epoch, trainable_state(phase.net), 0
        else:
            bad += 1
        lr = phase.optimizer.param_groups[0]["lr"]
        history.append({"epoch": epoch, **losses, **{f"val_{k}": v for k, v in val.items()}, "lr": lr})
        bar.set_postfix(loss=f"{losses['loss']:.4f}", val_auc=f"{val.get('auc', math.nan):.3f}",
                        val_f1=f"{val.get('f1', math.nan):.3f}")
        log.info("%s epoch %d: loss %.4f, val AUC %.3f, val F1@0.5 %.3f, lr %.2e", phase.name, epoch,
                 losses["loss"], val.get("auc", math.nan), val.get("f1", math.nan), lr)
        finished = bad >= phase.patience or epoch + 1 == phase.max_epochs
        if bad >= phase.patience:
            log.info("%s: early stop after epoch %d (no better validation %s for %d epochs; best epoch %d)",
                     phase.name, epoch, env.monitor, bad, best_epoch)
        _save(path, phase, env, epoch + 1, best_score, best_epoch, best_state, bad, history, finished)
        if finished:
            break
    bar.close()
    load_trainable_state(phase.net, best_state)
    return PhaseResult(phase.name, len(history), best_epoch, best_score, history)


def _save(path: Path, phase: Phase, env: TrainEnv, epoch: int, best_score, best_epoch: int, best_state,
          bad: int, history: list, finished: bool) -> None:
    if env.dist.is_main:
        save_checkpoint(path, {
            "fingerprint": phase.fingerprint, "phase": phase.name, "epoch": epoch, "finished": finished,
            "model": trainable_state(phase.net), "best_model": best_state, "best_score": list(best_score),
            "best_epoch": best_epoch, "bad_epochs": bad, "history": history,
            "optimizer": phase.optimizer.state_dict(), "scheduler": phase.scheduler.state_dict(),
        })
    barrier(env.dist)

