"""One epoch of each phase on a separable toy set, the frozen teacher, and resume."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bids_amyloid.models.networks import build_network
from bids_amyloid.train.checkpoint import trainable_state
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.train.data import SliceDataset, build_samples
from bids_amyloid.train.distributed import DistContext
from bids_amyloid.train.loop import TrainEnv, run_phase
from bids_amyloid.train.negatives import CentiloidNegativeSampler
from bids_amyloid.train.phases import distillation, prepare_student, teacher_pretraining, triplet_training
from bids_amyloid.train.prefix import PrefixCache


def setup(tmp_path, fakes, weights, n_subjects=8, **train):
    config = fakes.tiny_config(tmp_path, weights, **train)
    samples, _ = build_samples(fakes.fake_sessions(config.output_dir, n_subjects), Derivatives(config.output_dir), "T1w")

    def make(items, **kw):
        return SliceDataset(items, n_input=2, min_mean=0.01, pet_suvr_scale=3.0, **kw)

    env = TrainEnv(device=torch.device("cpu"), dist=DistContext(), work_dir=tmp_path / "work", seed=11)
    return config, samples, make, env


def _changed(before: dict, net) -> bool:
    after = trainable_state(net)
    return any(not torch.equal(before[k], after[k]) for k in before)


def _train_bce(net, ds) -> float:
    net.eval()
    with torch.no_grad():
        batch = [ds[i] for i in range(len(ds))]
        out = net.teacher(torch.stack([b.mri for b in batch]), torch.stack([b.pet for b in batch]))
        return F.binary_cross_entropy_with_logits(out.logit, torch.stack([b.label for b in batch])).item()


def test_each_phase_runs_one_epoch(tmp_path, fakes, tiny_weights):
    config, samples, make, env = setup(tmp_path, fakes, tiny_weights, phase0_epochs=2, augment=True)
    tc = config.train
    train, val = samples[:6], samples[6:]
    train_ds, val_ds = make(train, with_pet=True, augment=True), make(val, with_pet=True)
    net = build_network(config.model, seed=0)
    before, loss0 = trainable_state(net), _train_bce(net, make(train, with_pet=True))
    result = run_phase(teacher_pretraining(net, train_ds, val_ds, env, tc, "fp0"), env)
    assert result.epochs_run == 2 and len(result.best_score) == 2 and _changed(before, net)
    assert _train_bce(net, make(train, with_pet=True)) < loss0  # separable toy data: BCE goes down

    negatives = CentiloidNegativeSampler([s.subject for s in train], [s.centiloid for s in train],
                                         [s.label for s in train], mode="hard")
    before = trainable_state(net)
    phase = triplet_training(net, train_ds, make(train, with_pet=True), val_ds, negatives, env, tc, "fp1")
    result = run_phase(phase, env)
    assert result.epochs_run == 1 and _changed(before, net)
    assert {"triplet", "bce", "norm", "cos"} <= set(result.history[0]) and sum(negatives.fallback_counts.values())

    teacher_before = trainable_state(net)
    student = prepare_student(build_network(config.model, seed=1))
    before = trainable_state(student)
    phase = distillation(student, net, make(train, with_pet=None, augment=True), make(val, with_pet=False), env,
                         tc, "fp2")
    result = run_phase(phase, env)
    assert result.epochs_run == 1 and _changed(before, student)
    assert {"clf", "feat", "logit_kd"} <= set(result.history[0])
    assert not _changed(teacher_before, net)  # the teacher is frozen in phase 2
    assert (tmp_path / "work" / "phase2.pt").exists()


def test_label_only_student_needs_no_pet(tmp_path, fakes, tiny_weights):
    config, samples, make, env = setup(tmp_path, fakes, tiny_weights)
    env.prefix_cache = PrefixCache(2**30)  # augmentation off: training reuses the frozen prefix too
    student = prepare_student(build_network(config.model, seed=1))
    before = trainable_state(student)
    phase = distillation(student, None, make(samples[:6], with_pet=False), make(samples[6:], with_pet=False),
                         env, config.train, "fp")
    result = run_phase(phase, env)
    assert set(result.history[0]) >= {"clf", "loss"} and "feat" not in result.history[0]
    assert _changed(before, student) and 2 < len(env.prefix_cache) <= len(samples)  # val + drawn train


class Crash(Exception):
    pass


def test_resume_continues_from_the_checkpoint(tmp_path, fakes, tiny_weights):
    config, samples, make, env = setup(tmp_path, fakes, tiny_weights, phase0_epochs=2, augment=True)
    train_ds, val_ds = make(samples[:6], with_pet=True, augment=True), make(samples[6:], with_pet=True)

    def phase(env):
        net = build_network(config.model, seed=0)
        return net, teacher_pretraining(net, train_ds, val_ds, env, config.train, "fp")

    torch.manual_seed(5)
    straight_net, straight = phase(env)
    run_phase(straight, env)
    reference = trainable_state(straight_net)

    env2 = TrainEnv(device=torch.device("cpu"), dist=DistContext(), work_dir=tmp_path / "work2", seed=11)
    torch.manual_seed(5)
    _, crashing = phase(env2)
    run_epoch = crashing.run_epoch

    def crash_on_second(epoch):
        if epoch == 1:
            raise Crash
        return run_epoch(epoch)

    crashing.run_epoch = crash_on_second
    with pytest.raises(Crash):
        run_phase(crashing, env2)
    assert (tmp_path / "work2" / "phase0.pt").exists()

    torch.manual_seed(999)  # the checkpoint's RNG state must win
    env2.resume = True
    resumed_net, resumed = phase(env2)
    result = run_phase(resumed, env2)
    assert [h["epoch"] for h in result.history] == [0, 1]
    after = trainable_state(resumed_net)
    for k in reference:
        assert torch.allclose(reference[k], after[k], atol=1e-6), k
    # a finished phase is not trained again
    env2.resume = True
    again_net, again = phase(env2)
    assert run_phase(again, env2).epochs_run == 2
    assert all(torch.equal(after[k], v) for k, v in trainable_state(again_net).items())
    # a checkpoint from other settings is refused
    from bids_amyloid.errors import UsageError

    other_net = build_network(config.model, seed=0)
    other = teacher_pretraining(other_net, train_ds, val_ds, env2, config.train, "another-fingerprint")
    with pytest.raises(UsageError, match="other training settings"):
        run_phase(other, env2)


def test_lr_scale_multiplies_every_learning_rate(tmp_path, fakes, tiny_weights):
    config, samples, make, env = setup(tmp_path, fakes, tiny_weights, lr_scale=10.0)
    tc, net = config.train, build_network(config.model, seed=0)
    ds = make(samples, with_pet=True)
    negatives = CentiloidNegativeSampler([s.subject for s in samples], [s.centiloid for s in samples],
                                         [s.label for s in samples])
    phases = [teacher_pretraining(net, ds, ds, env, tc, "a"), triplet_training(net, ds, ds, ds, negatives, env, tc, "b"),
              distillation(net, None, make(samples, with_pet=False), make(samples, with_pet=False), env, tc, "c")]
    p0, p1, p2 = tc.recipe.phase0, tc.recipe.phase1, tc.recipe.phase2
    expected = [[p0.lr], [p1.encoder_lr, p1.classifier_lr], [p2.lora_lr, p2.heads_lr, p2.classifier_lr]]
    for phase, lrs in zip(phases, expected):
        assert [g["lr"] for g in phase.optimizer.param_groups] == pytest.approx([10.0 * lr for lr in lrs])
    assert phases[1].scheduler.eta_min == pytest.approx(10.0 * p1.eta_min)
