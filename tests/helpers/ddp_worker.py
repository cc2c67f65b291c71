"""Run by test_distributed.py, with torchrun (2 processes) or plain python (1 process):
one epoch of phase 0 and of phase 2 on the fake cohort, dropout off; rank 0 saves the tensors.

Usage: ddp_worker.py COHORT_DIR WEIGHTS_DIR RESULT.pt
"""
import sys
from pathlib import Path

import torch
from torch import nn

from bids_amyloid.models.networks import build_network
from bids_amyloid.train.checkpoint import trainable_state
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.train.data import SliceDataset, build_samples
from bids_amyloid.train.distributed import init_distributed, shutdown
from bids_amyloid.train.loop import TrainEnv, run_phase
from bids_amyloid.train.phases import distillation, teacher_pretraining

from helpers import fakes  # tests/ is on PYTHONPATH (test_distributed.py)


def no_dropout(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        elif isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    return net


def main(cohort: Path, weights: Path, result: Path) -> None:
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    config = fakes.tiny_config(cohort, weights, augment=True)
    sessions = fakes.fake_sessions(config.output_dir, 8, write=False)  # the test wrote the caches
    samples, _ = build_samples(sessions, Derivatives(config.output_dir), "T1w")

    def make(items, **kw):
        return SliceDataset(items, n_input=2, min_mean=0.01, pet_suvr_scale=3.0, seed=4, **kw)

    env = TrainEnv(device=torch.device("cpu"), dist=ctx, work_dir=result.parent / f"work-{ctx.world_size}", seed=5)
    teacher = no_dropout(build_network(config.model, seed=0))
    init = {"teacher": trainable_state(teacher)}
    train, val = samples[:6], samples[6:]
    run_phase(teacher_pretraining(teacher, make(train, with_pet=True, augment=True), make(val, with_pet=True), env,
                                  config.train, "fp0"), env)
    student = no_dropout(build_network(config.model, seed=1))
    init["student"] = trainable_state(student)
    run_phase(distillation(student, teacher, make(train, with_pet=None, augment=True), make(val, with_pet=False),
                           env, config.train, "fp2"), env)
    if ctx.is_main:
        torch.save({"init": init, "teacher": trainable_state(teacher), "student": trainable_state(student)}, result)
    shutdown(ctx)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
