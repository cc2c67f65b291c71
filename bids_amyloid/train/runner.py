"""Cross-validation of one contrast: per outer fold, train the teacher (phases 0, 1) and the
student (phase 2) on the training part, choose their thresholds on the validation part, and
predict the held-out part only. A finished fold is saved in the work dir and skipped on resume.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bids_amyloid.bids.io import atomic_path
from bids_amyloid.config import Config, settings_fingerprint
from bids_amyloid.errors import DataError
from bids_amyloid.models.calibration import FoldDecision, fit_calibrator, zone
from bids_amyloid.models.networks import build_network
from bids_amyloid.train.cv import Fold, Splits
from bids_amyloid.train.data import SliceDataset, TrainingSample, student_samples, teacher_samples
from bids_amyloid.train.distributed import DistContext, barrier
from bids_amyloid.train.loop import PhaseResult, TrainEnv, infer, run_phase
from bids_amyloid.train.metrics import choose_threshold, rule_in_threshold, rule_out_threshold, safe_auc
from bids_amyloid.train.negatives import CentiloidNegativeSampler
from bids_amyloid.train.phases import distillation, prepare_student, teacher_pretraining, triplet_training
from bids_amyloid.train.records import FoldOutput, FoldSummary, PhaseSummary, PredictionRow
from bids_amyloid.train.prefix import PrefixCache
from bids_amyloid.train.runtime import seed_everything, stream_seed

log = logging.getLogger("bids_amyloid.train")

RESULT_VERSION = 3
DECISION_SETTINGS = ("calibration", "rule_out_sensitivity", "rule_in_specificity")
"""Settings that change a fold's decision rule, not its networks: a finished fold is redone when
they change, but an interrupted phase's checkpoint stays valid."""


def _settings(config: Config, contrast: str, fold: Fold, samples: Sequence[TrainingSample]) -> dict[str, Any]:
    """What a fold's result depends on (it is redone when this changes; reporting-only settings
    such as ``subgroup_columns`` are left out)."""
    as_dict = config.to_dict()
    train = {k: v for k, v in as_dict["train"].items() if k not in ("resume", "workers", "subgroup_columns")}
    used = set(fold.train + fold.val + fold.test)
    return {"train": train, "model": as_dict["model"], "seed": config.seed, "contrast": contrast,
            "fold": dataclasses.asdict(fold), "min_mean": config.preprocess.min_slice_mean,
            "samples": [str(s) for s in samples if s.subject in used]}


def _rows(model: str, part: str, fold: int, samples: Sequence[TrainingSample], prob: np.ndarray,
          decision: FoldDecision, tracers: dict[str, str]) -> list[PredictionRow]:
    """Rows of one part; a student row names the tracer(s) of its session's PET (for subgroups)."""
    calibrated = decision.calibrate(prob)
    return [PredictionRow(f"sub-{s.subject}", f"ses-{s.session}" if s.session else None, s.contrast,
                          s.tracer if model == "teacher" else tracers.get(s.key), model, fold, part, s.label,
                          s.centiloid, float(p), decision.threshold, int(p >= decision.threshold), float(q),
                          decision.rule_out, decision.rule_in, zone(float(q), decision.rule_out, decision.rule_in))
            for s, p, q in zip(samples, prob, calibrated)]


def warn_if_weak(auc: float, limit: float, where: str) -> bool:
    """Log loudly when the teacher is near chance (the reference scripts went on silently)."""
    if math.isnan(auc) or auc < limit:
        bar = "!" * 78
        log.warning("%s\n%s: the TEACHER's validation AUC is %.3f (< %.2f): it is near chance, so distilling it "
                    "cannot help the student. Check labels, PET preprocessing and epochs.\n%s",
                    bar, where, auc, limit, bar)
        return True
    log.info("%s: teacher validation AUC %.3f", where, auc)
    return False


class _FoldJob:
    """One fold's parts, datasets and predictions, shared by the teacher and the student."""

    def __init__(self, samples: Sequence[TrainingSample], fold: Fold, config: Config, env: TrainEnv, contrast: str):
        self.fold, self.config, self.env, self.tc = fold, config, env, config.train
        self.where = f"{contrast} fold {fold.index}"
        self.settings = _settings(config, contrast, fold, samples)
        parts = {p: [s for s in samples if s.subject in set(getattr(fold, p))] for p in ("train", "val", "test")}
        self.train, self.val, self.test = parts["train"], parts["val"], parts["test"]
        if not (self.train and self.val and self.test):
            raise DataError(f"{self.where}: an empty train/val/test part "
                            f"({len(self.train)}/{len(self.val)}/{len(self.test)} sessions)")
        self.rows: list[PredictionRow] = []
        tracers: dict[str, set[str]] = defaultdict(set)
        for s in samples:
            if s.tracer:
                tracers[s.key].add(s.tracer)
        self.tracers = {key: "+".join(sorted(found)) for key, found in tracers.items()}
        self.summary = FoldSummary(fold.index, {k: len(v) for k, v in parts.items()})

    def dataset(self, items, *, with_pet: bool | None, augment: bool = False, tag: str = "eval") -> SliceDataset:
        c = self.config
        return SliceDataset(items, n_input=c.model.input_slices, min_mean=c.preprocess.min_slice_mean,
                            pet_suvr_scale=c.model.pet_suvr_scale, with_pet=with_pet, augment=augment,
                            seed=stream_seed(self.env.seed, "augment", tag))

    def network(self, layout: str, tag: str):
        seed = stream_seed(self.env.seed, "init", tag)
        return build_network(self.config.model, student_layout=layout, seed=seed).to(self.env.device)

    def fingerprint(self, phase: int) -> str:
        """Of a phase's checkpoints: the fold's settings without the decision-rule ones."""
        train = {k: v for k, v in self.settings["train"].items() if k not in DECISION_SETTINGS}
        return settings_fingerprint({**self.settings, "train": train, "phase": phase})

    def predict(self, net, items, mode: str, part: str, decision: FoldDecision | None = None
                ) -> tuple[np.ndarray, FoldDecision]:
        """Predict the validation part and make the decision rule there (and only there), or the
        held-out part with that rule; the rows go to the predictions table."""
        batch = self.tc.batch_size if mode == "teacher" else self.tc.student_batch_size
        ds = self.dataset(items, with_pet=mode == "teacher")
        prob = infer(net, ds, mode, self.env, batch_size=batch)["prob"]
        if decision is None:
            decision = self.decide(ds.labels, prob, f"{self.where} {mode}")
        self.rows += _rows(mode, part, self.fold.index, items, prob, decision, self.tracers)
        return prob, decision

    def decide(self, labels: Sequence[int], prob: np.ndarray, where: str) -> FoldDecision:
        """Threshold, calibrator and operating points, all from validation predictions."""
        tc = self.tc
        calibrator = fit_calibrator(labels, prob, tc.calibration)
        if calibrator is None and tc.calibration != "none":
            log.warning("%s: the validation part has one class only; no calibration", where)
        q = calibrator(prob) if calibrator is not None else prob
        rule_out, rule_in = rule_out_threshold(labels, q, tc.rule_out_sensitivity), rule_in_threshold(
            labels, q, tc.rule_in_specificity)
        decision = FoldDecision(choose_threshold(labels, prob, self.env.threshold_rule), calibrator,
                                None if math.isnan(rule_out) else rule_out, None if math.isnan(rule_in) else rule_in)
        log.info("%s: threshold %.3f, calibration %s, rule-out < %s, rule-in >= %s", where, decision.threshold,
                 calibrator.to_json() if calibrator else "none", _fmt(decision.rule_out), _fmt(decision.rule_in))
        return decision

    def teacher(self) -> tuple[torch.nn.Module, dict[str, torch.Tensor], FoldDecision]:
        """Phases 0 and 1: the teacher, its trainable tensors and its decision rule."""
        tc = self.tc
        train, val, test = teacher_samples(self.train), teacher_samples(self.val), teacher_samples(self.test)
        if not train or not val:
            raise DataError(f"{self.where}: no {'training' if not train else 'validation'} session has a PET slice "
                            "cache, so the teacher cannot be trained; run participant level on the PET, or "
                            "train a label-only student (--no-distill)")
        net = self.network("paper", "teacher")
        train_ds = self.dataset(train, with_pet=True, augment=tc.augment, tag="teacher")
        val_ds = self.dataset(val, with_pet=True)
        results: list[PhaseResult] = []
        if tc.phase0:
            phase = teacher_pretraining(net, train_ds, val_ds, self.env, tc, self.fingerprint(0))
            results.append(run_phase(phase, self.env))
        if tc.triplet:
            negatives = CentiloidNegativeSampler(
                [s.subject for s in train], [s.centiloid for s in train], [s.label for s in train],
                min_delta=tc.negative_min_delta, ladder=tc.negative_fallbacks, mode=tc.negatives,
                semi_hard=tc.semi_hard, seed=stream_seed(self.env.seed, "negatives"))
            bank_ds = self.dataset(train, with_pet=True)  # un-augmented: what hard mining compares
            phase = triplet_training(net, train_ds, bank_ds, val_ds, negatives, self.env, tc, self.fingerprint(1))
            results.append(run_phase(phase, self.env))
            self.summary.negative_rules = dict(negatives.fallback_counts)
        self.summary.teacher_phases = [_phase_summary(r) for r in results]
        prob, decision = self.predict(net, val, "teacher", "val")
        auc = safe_auc([s.label for s in val], prob)
        self.summary.teacher_val_auc = auc
        self.summary.teacher_weak = warn_if_weak(auc, tc.weak_teacher_auc, self.where)
        if test:
            self.predict(net, test, "teacher", "test", decision)
        return net.eval(), _cpu(net.trainable_state_dict()), decision

    def student(self, teacher: torch.nn.Module | None) -> tuple[torch.nn.Module, FoldDecision]:
        """Phase 2 (distillation, or labels only without a teacher): the student and its decision rule."""
        if teacher is not None and self.config.model.student == "paper":
            student = copy.deepcopy(teacher)  # the paper's student: the teacher, continued without PET
        else:
            student = self.network(self.config.model.student, "student")
        prepare_student(student, self.tc.recipe.phase2)
        train, val = student_samples(self.train), student_samples(self.val)
        train_ds = self.dataset(train, with_pet=None if teacher is not None else False, augment=self.tc.augment,
                                tag="student")
        phase = distillation(student, teacher, train_ds, self.dataset(val, with_pet=False), self.env, self.tc,
                             self.fingerprint(2))
        self.summary.student_phase = _phase_summary(run_phase(phase, self.env))
        _, decision = self.predict(student, val, "student", "val")
        self.predict(student, student_samples(self.test), "student", "test", decision)
        return student, decision


def train_fold(samples: Sequence[TrainingSample], fold: Fold, config: Config, env: TrainEnv,
               contrast: str) -> FoldOutput:
    """Train and evaluate one outer fold; see the module docstring."""
    job = _FoldJob(samples, fold, config, env, contrast)
    teacher, teacher_state, teacher_rule = job.teacher() if config.train.distill else (None, None, None)
    student, student_rule = job.student(teacher)
    job.summary.student_decision = student_rule.to_json()
    job.summary.teacher_decision = teacher_rule.to_json() if teacher_rule else None
    return FoldOutput(fold.index, _cpu(student.trainable_state_dict()), job.summary.student_decision, teacher_state,
                      job.summary.teacher_decision, job.rows, job.summary)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _phase_summary(r: PhaseResult) -> PhaseSummary:
    return PhaseSummary(r.name, r.epochs_run, r.best_epoch, list(r.best_score), r.history)


def fold_result_path(work_dir: Path, contrast: str, fold: int) -> Path:
    return Path(work_dir) / "train" / contrast / f"fold-{fold}" / "result.pt"


def cross_validate(samples: Sequence[TrainingSample], splits: Splits, config: Config, *, contrast: str,
                   device: torch.device, ctx: DistContext) -> list[FoldOutput]:
    """Every outer fold of one contrast (finished folds are reused when resuming)."""
    outputs = []
    t = config.train
    cache = PrefixCache(t.cache_frozen_gib * 2**30) if t.cache_frozen else None  # shared by the folds
    for fold in splits.folds:
        path = fold_result_path(config.resolved_work_dir, contrast, fold.index)
        fp = settings_fingerprint(_settings(config, contrast, fold, samples))
        if config.train.resume and path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("fingerprint") == fp and saved.get("version") == RESULT_VERSION:
                log.info("%s fold %d: finished earlier, reusing %s", contrast, fold.index, path)
                outputs.append(FoldOutput.from_saved(saved["output"]))
                continue
        seed = stream_seed(config.seed, contrast, fold.index)
        # The global generators (dropout) start each fold from its own seed: a fold trained after
        # resuming, with the earlier folds reused, draws exactly what it drew in one go.
        seed_everything(seed)
        env = TrainEnv(device=device, dist=ctx, work_dir=path.parent, seed=seed, workers=t.workers, bf16=t.bf16,
                       resume=t.resume, monitor=t.monitor, threshold_rule=t.threshold_rule,
                       prefix_cache=cache)
        log.info("%s fold %d of %d: %d train / %d val / %d test subjects", contrast, fold.index + 1,
                 len(splits.folds), len(fold.train), len(fold.val), len(fold.test))
        output = train_fold(samples, fold, config, env, contrast)
        if ctx.is_main:
            with atomic_path(path) as tmp:
                payload = {"version": RESULT_VERSION, "fingerprint": fp, "output": dataclasses.asdict(output)}
                torch.save(payload, tmp)
        barrier(ctx)
        outputs.append(output)
    return outputs
