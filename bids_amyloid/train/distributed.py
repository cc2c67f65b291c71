"""Data-parallel training under ``torchrun`` (gloo on the CPU, NCCL on GPUs).

Usage: ``torchrun --nproc_per_node N -m bids_amyloid BIDS OUT group ...``. Every process holds
the whole network and 1/N of each batch. Gradients are averaged across processes once per
optimizer step (what DistributedDataParallel does with ``no_sync`` during gradient accumulation);
we average them explicitly because the networks are called through several methods (teacher,
student, PET pooling), not through one ``forward``, which DDP's hooks rely on. Sample order,
augmentation and negative choice are seeded per sample and epoch, not per process, so N
processes see exactly the batches one process sees (dropout masks differ, and phase 1's
cosine penalty, a function of the batch mean, is taken per process share). Only rank 0 writes.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

log = logging.getLogger("bids_amyloid.train")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device_preference: str) -> DistContext:
    """Join the process group that torchrun describes (WORLD_SIZE > 1); else a 1-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_preference != "cpu"
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        log.info("distributed training: rank %d of %d (%s)", rank, world, backend)
    return DistContext(rank, world, local_rank)


def shutdown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params: Sequence[nn.Parameter], ctx: DistContext) -> None:
    """All-reduce and average the gradients of ``params`` (one flat buffer per dtype)."""
    if not ctx.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat)
        flat /= ctx.world_size
        offset = 0
        for g in group:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (in rank order) on every rank."""
    if not ctx.active:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ClassBalancedSampler(DistributedSampler):
    """Draws ``len(dataset)`` indices per epoch with probability 1/(class count), with replacement
    (or a plain permutation when ``balanced`` is False), from a generator seeded by
    ``(seed, epoch)``, then gives each rank every N-th index, like :class:`DistributedSampler`.
    Rank r's k-th batch of size B/N plus the other ranks' equals the 1-process k-th batch of B."""

    def __init__(self, dataset: Dataset, labels: Sequence[int], ctx: DistContext, *, seed: int,
                 balanced: bool = True):
        super().__init__(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
        y = torch.as_tensor(labels, dtype=torch.long)
        counts = torch.bincount(y, minlength=2).clamp(min=1).double()
        self.weights = 1.0 / counts[y]
        self.balanced = balanced

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        n = len(self.weights)
        if self.balanced:
            order = torch.multinomial(self.weights, n, replacement=True, generator=g).tolist()
        else:
            order = torch.randperm(n, generator=g).tolist()
        order += order[: self.total_size - n]  # pad so every rank gets the same count
        return iter(order[self.rank:self.total_size:self.num_replicas])


def eval_sampler(dataset: Dataset, ctx: DistContext) -> DistributedSampler | None:
    """Every rank predicts a strided share (DistributedSampler, no shuffle); None on one process."""
    if not ctx.active:
        return None
    return DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=False)


def per_rank_batch(batch_size: int, ctx: DistContext) -> int:
    """Each rank's share of a global batch (warns when it does not divide evenly)."""
    if batch_size % ctx.world_size:
        log.warning("batch size %d is not divisible by %d processes: using %d per process",
                    batch_size, ctx.world_size, math.ceil(batch_size / ctx.world_size))
    return max(1, math.ceil(batch_size / ctx.world_size))
