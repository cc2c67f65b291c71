"""The three training phases of the method (method.md 4), each a :class:`Phase` for
:func:`bids_amyloid.train.loop.run_phase`. Their numbers are ``config.train.recipe``; its defaults:

- phase 0: teacher classification (BCE), AdamW lr 2e-5 wd 1e-3, batch 6, clip 1/2/5.
- phase 1: triplet + BCE + norm + cosine penalty with Centiloid-aware negatives; AdamW 5e-6
  (LoRA, projection, attention; wd 1e-2) and 2e-5 (classifier; wd 5e-3); cosine warm restarts
  (T_0 5, T_mult 2, eta_min 1e-7) stepped per epoch; batch 6, effective 30; clip 1.
- phase 2: distillation into the MRI-only student (or labels only); AdamW LoRA 2e-4 (wd 0),
  projection/attention 1e-4 (wd 1e-4), classifier 1e-4 (wd 1e-3); ReduceLROnPlateau on the
  validation score (factor 0.7, patience 15); batch 10, effective 30; clip 5.

Every phase samples class-balanced batches (the method states it for phase 0; we keep it for
all phases so that F1 at 0.5, the early-stopping score, stays meaningful with imbalanced data).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bids_amyloid.config import Phase0Recipe, Phase2Recipe, TrainConfig
from bids_amyloid.train.data import Batch, SliceDataset, make_loader
from bids_amyloid.train.distributed import ClassBalancedSampler, per_rank_batch
from bids_amyloid.train.loop import Phase, TrainEnv, infer, train_epoch
from bids_amyloid.train.losses import LossTerms, distill_loss, phase1_loss
from bids_amyloid.train.metrics import monitor_score, safe_auc
from bids_amyloid.train.negatives import CentiloidNegativeSampler
from bids_amyloid.train.runtime import stream_seed

def phase0_clip(epoch: int, recipe: Phase0Recipe = Phase0Recipe()) -> float:
    """Gradient-norm clip of phase 0: 1 for epochs 0-1, 2 for 2-4, 5 afterwards (the recipe's steps)."""
    return recipe.clip_values[sum(epoch >= e for e in recipe.clip_epochs)]


def accumulation(batch: int, effective: int) -> int:
    """Micro-batches per optimizer step to reach the effective batch."""
    return max(1, round(effective / batch))


def trainable(net: nn.Module) -> list[nn.Parameter]:
    return [p for p in net.parameters() if p.requires_grad]


def validator(net: nn.Module, val_ds: SliceDataset, mode: str, env: TrainEnv, batch_size: int,
              ) -> Callable[[], tuple[tuple[float, ...], dict[str, float]]]:
    """Validation score for early stopping and the plateau scheduler (see metrics.monitor_score)."""

    def validate() -> tuple[tuple[float, ...], dict[str, float]]:
        prob = infer(net, val_ds, mode, env, batch_size=batch_size)["prob"]
        y = val_ds.labels
        score = monitor_score(y, prob, env.monitor)
        f1 = score[0] if env.monitor == "f1" else score[1]
        return score, {"auc": safe_auc(y, prob), "f1": f1}

    return validate


def _epoch_runner(*, env: TrainEnv, net: nn.Module, ds: SliceDataset, batch: int, accum: int,
                  clip: Callable[[int], float], optimizer, step: Callable[[Batch, int], LossTerms], name: str,
                  before_epoch: Callable[[int], None] | None = None, extra_nets: tuple = ()) -> Callable[[int], dict]:
    sampler = ClassBalancedSampler(ds, ds.labels, env.dist, seed=stream_seed(env.seed, name, "order"))
    loader = make_loader(ds, batch_size=per_rank_batch(batch, env.dist), sampler=sampler, workers=env.workers,
                         seed=stream_seed(env.seed, name, "loader"), pin_memory=env.device.type == "cuda")
    params = trainable(net)

    def run_epoch(epoch: int) -> dict[str, float]:
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        if before_epoch is not None:
            before_epoch(epoch)
        net.train()
        for other in extra_nets:
            other.eval()
        return train_epoch(env=env, loader=loader, step=lambda b: step(b, epoch), optimizer=optimizer,
                           params=params, accum=accum, clip=clip(epoch), desc=f"{name} epoch {epoch}")

    return run_epoch


def teacher_pretraining(net: nn.Module, train_ds: SliceDataset, val_ds: SliceDataset, env: TrainEnv,
                        tc: TrainConfig, fingerprint: str) -> Phase:
    """Phase 0: the teacher learns the label from PET + MRI (BCE)."""
    r = tc.recipe.phase0
    optimizer = torch.optim.AdamW(trainable(net), lr=r.lr * tc.lr_scale, weight_decay=r.weight_decay)

    cache = not train_ds.augment

    def step(batch: Batch, epoch: int) -> LossTerms:
        out = net.teacher(env.inputs(net, batch, "mri", cache), env.inputs(net, batch, "pet", cache))
        loss = F.binary_cross_entropy_with_logits(out.logit.float(), batch.label)
        return LossTerms(loss, {})

    run = _epoch_runner(env=env, net=net, ds=train_ds, batch=tc.batch_size, accum=1, clip=lambda e: phase0_clip(e, r),
                        optimizer=optimizer, step=step, name="phase0")
    return Phase("phase0", net, optimizer, torch.optim.lr_scheduler.ConstantLR(optimizer, 1.0, total_iters=0),
                 False, tc.phase0_epochs, tc.phase0_patience, run,
                 validator(net, val_ds, "teacher", env, tc.batch_size), fingerprint)


def triplet_training(net: nn.Module, train_ds: SliceDataset, bank_ds: SliceDataset, val_ds: SliceDataset,
                     negatives: CentiloidNegativeSampler, env: TrainEnv, tc: TrainConfig, fingerprint: str) -> Phase:
    """Phase 1: anchor cross_attn(PET, MRI), positive self_attn(PET), negative self_attn(PET of
    another subject, Centiloid-aware). ``bank_ds`` = ``train_ds`` without augmentation (the
    embeddings hard mining compares, refreshed at the start of every epoch)."""
    groups, r = net.parameter_groups(), tc.recipe.phase1
    encoder = groups["lora"] + groups["projection"] + groups["attention"]
    optimizer = torch.optim.AdamW([
        {"params": encoder, "lr": r.encoder_lr * tc.lr_scale, "weight_decay": r.encoder_wd},
        {"params": groups["classifier"], "lr": r.classifier_lr * tc.lr_scale, "weight_decay": r.classifier_wd},
    ])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=r.t0, T_mult=r.t_mult, eta_min=r.eta_min * tc.lr_scale)
    bank: dict[str, torch.Tensor | None] = {"emb": None}
    cache = not train_ds.augment

    def refresh_bank(epoch: int) -> None:
        if negatives.mode == "hard":
            pooled = infer(net, bank_ds, "pet", env, batch_size=tc.batch_size)["pooled"]
            bank["emb"] = torch.from_numpy(pooled)

    def step(batch: Batch, epoch: int) -> LossTerms:
        b = batch.mri.shape[0]
        emb = net.embed(torch.cat([env.inputs(net, batch, "mri", cache), env.inputs(net, batch, "pet", cache)]))
        emb_mri, emb_pet = emb[:b], emb[b:]
        a, _ = net.cross_attn(emb_pet, emb_mri)
        logit = net.classifier(a).squeeze(-1)
        p, _ = net.self_attn(emb_pet, emb_pet)
        chosen = negatives.choose(batch.index.tolist(), epoch=epoch, anchor_emb=a, positive_emb=p,
                                  bank=bank["emb"])
        negative = env.to_device(train_ds.pet_batch(chosen))
        emb_neg = net.embed(env.inputs(net, negative, "pet", cache))
        n, _ = net.self_attn(emb_neg, emb_neg)
        return phase1_loss(a, p, n, logit, batch.label, epoch, r)

    run = _epoch_runner(env=env, net=net, ds=train_ds, batch=tc.batch_size,
                        accum=accumulation(tc.batch_size, tc.effective_batch), clip=lambda e: r.clip,
                        optimizer=optimizer, step=step, name="phase1", before_epoch=refresh_bank)
    return Phase("phase1", net, optimizer, scheduler, False, tc.phase1_epochs, tc.phase1_patience, run,
                 validator(net, val_ds, "teacher", env, tc.batch_size), fingerprint)


def prepare_student(student: nn.Module, recipe: Phase2Recipe = Phase2Recipe()) -> nn.Module:
    """Lower the student's dropouts (method.md 4.3)."""
    student.set_dropouts(projection=recipe.projection_dropout, classifier=recipe.classifier_dropout)
    return student


def distillation(student: nn.Module, teacher: nn.Module | None, train_ds: SliceDataset, val_ds: SliceDataset,
                 env: TrainEnv, tc: TrainConfig, fingerprint: str) -> Phase:
    """Phase 2: student(MRI) learns from the labels (focal-margin BCE) and, with a teacher, from
    its pooled vector (feature KD) and logit (logit KD). Samples without PET get the label loss
    only (``train_ds`` with ``with_pet=None``)."""
    groups, r = student.parameter_groups(), tc.recipe.phase2
    optimizer = torch.optim.AdamW([
        {"params": groups["lora"], "lr": r.lora_lr * tc.lr_scale, "weight_decay": r.lora_wd},
        {"params": groups["projection"] + groups["attention"], "lr": r.heads_lr * tc.lr_scale,
         "weight_decay": r.heads_wd},
        {"params": groups["classifier"], "lr": r.classifier_lr * tc.lr_scale, "weight_decay": r.classifier_wd},
    ])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=r.plateau_factor,
                                                           patience=r.plateau_patience)

    cache = not train_ds.augment

    def step(batch: Batch, epoch: int) -> LossTerms:
        mri = env.inputs(student, batch, "mri", cache)
        s = student.student(mri)
        if teacher is None or batch.pet is None:
            return distill_loss(s.logit, s.pooled, batch.label, epoch, r, label_only=teacher is None)
        rows = batch.pet_rows
        with torch.no_grad():
            t_mri = env.inputs(teacher, batch, "mri", cache)[rows]  # its own prefix (layouts may differ)
            t = teacher.teacher(t_mri, env.inputs(teacher, batch, "pet", cache))
        return distill_loss(s.logit, s.pooled, batch.label, epoch, r, t_logit=t.logit, t_pooled=t.pooled,
                            rows=rows, use_feature=tc.feature_kd, use_logit=tc.logit_kd)

    extra = (teacher,) if teacher is not None else ()
    run = _epoch_runner(env=env, net=student, ds=train_ds, batch=tc.student_batch_size,
                        accum=accumulation(tc.student_batch_size, tc.effective_batch),
                        clip=lambda e: r.clip, optimizer=optimizer, step=step, name="phase2",
                        extra_nets=extra)
    return Phase("phase2", student, optimizer, scheduler, True, tc.phase2_epochs, tc.phase2_patience, run,
                 validator(student, val_ds, "student", env, tc.student_batch_size), fingerprint)
