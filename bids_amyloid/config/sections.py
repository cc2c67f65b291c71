"""The sections of the configuration: labels, preprocessing, model, training, prediction.

Every field is a setting (docstring right below it; the command line is made from them, see
``config.options``). ``validate()`` checks what types cannot.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bids_amyloid.config.fields import cli
from bids_amyloid.config.recipe import Recipe
from bids_amyloid.errors import UsageError

SALIENCY_METHODS = ("gradcam", "gradient")


@dataclass
class LabelConfig:
    centiloid_column: str = "centiloid"
    """Column holding Centiloid values (matched case-insensitively)."""
    centiloid_threshold: float = 20.6
    """A session is amyloid positive when its Centiloid is strictly greater than this."""
    label_column: str | None = None
    """Column with a ready binary status (0/1, positive/negative); overrides the Centiloid rule."""
    labels_file: Path | None = field(default=None, metadata=cli("--labels-file", metavar="FILE"))
    """External label table (TSV or CSV) keyed by participant_id [and session_id]; wins over the dataset's tables."""


@dataclass
class PreprocessConfig:
    registration: Literal["affine", "syn"] = "affine"
    """T1w -> template transform: 'affine' or 'syn' (affine + SyN)."""
    registration_resolution_mm: int = 2
    """Template resolution used to estimate the transform (applied at 1 mm)."""
    n4_shrink: int = 6
    """N4 shrink factor for a 1 mm image (field fitted on a ~6 mm grid; measured fast and accurate)."""
    n_slices: int = 40
    """Sagittal slices extracted per session."""
    slice_band: tuple[float, float] = (0.40, 0.60)
    """Fraction of the template's left-right extent the slices span."""
    min_slice_mean: float = 0.01
    """Slices whose mean intensity is below this are dropped (method.md)."""
    slice_size: int = 224
    """In-plane size of a slice tensor (square, aspect ratio kept by padding)."""
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    """MRI intensities are clipped to these percentiles before scaling to [0, 1]."""
    gamma: float = 0.9
    """Gamma applied to MRI intensities after scaling to [0, 1]."""
    max_voxel_mm: float = 1.5
    """QC: largest voxel spacing accepted for T1w/T2w (thick-slice FLAIR/T2* use max_voxel_thick_mm)."""
    max_voxel_thick_mm: float = 6.0
    """QC: largest voxel spacing accepted for FLAIR and T2starw."""
    max_voxel_pet_mm: float = 6.0
    """QC: largest voxel spacing accepted for PET."""
    suvr_window: dict[str, tuple[float, float]] = field(default_factory=dict, metadata=cli(
        "--suvr-window", metavar="WINDOW", parse="bids_amyloid.bids.tracers:parse_suvr_window"))
    """Static SUVR window, minutes after injection: START END for every tracer or FAMILY=START-END ...; empty = each family's default (PiB 50-70, florbetapir 50-60, florbetaben/flutemetamol 90-110, NAV4694 50-70)."""
    realign_frames: bool = field(default=True, metadata=cli("--no-frame-realign"))
    """Realign the window frames of a dynamic PET to each other (rigid, ANTs) before averaging them."""
    centiloid_estimate: bool = True
    """Write a global cortical SUVR and a Centiloid ESTIMATE into the PET sidecar (needs the AAL atlas)."""
    qc_figures: bool = True
    """Write QC figures (SVG) per session into sub-X/figures/."""

    def validate(self) -> None:
        lo, hi = self.slice_band
        if not 0.0 <= lo < hi <= 1.0:
            raise UsageError(f"slice band must satisfy 0 <= lo < hi <= 1, got {self.slice_band}")
        for family, window in self.suvr_window.items():
            if len(window) != 2 or not 0 <= window[0] < window[1]:
                raise UsageError(f"--suvr-window {family}={window}: need 0 <= START < END (minutes)")


@dataclass
class ModelConfig:
    backbone: Literal["biomedclip", "tiny"] = "biomedclip"
    """'biomedclip' (ViT-B/16, the method) or 'tiny' (random weights, TESTING ONLY)."""
    backbone_weights: Path | None = field(default=None, metadata=cli("--backbone-weights", metavar="DIR"))
    """Folder with the vision-tower safetensors (default: $BIDS_AMYLOID_WEIGHTS or the image's copy)."""
    input_slices: int = 25
    """Slices per session fed to the model (evenly spaced among the extracted ones)."""
    lora_rank: int = 32
    """LoRA rank on the attention projections."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator (scale = alpha / rank)."""
    lora_dropout: float = 0.1
    """Dropout on the LoRA input."""
    lora_first_block: int | None = None
    """First transformer block with LoRA (earlier blocks frozen); None = second half (6 for ViT-B)."""
    proj_dim: int = 128
    """Slice embedding size after the projection head."""
    attn_heads: int = 4
    """Heads of the attention pooling block."""
    pooling_temperature: float = 2.0
    """Softmax temperature of the slice weights."""
    student: Literal["paper", "small"] = "paper"
    """Student layout: 'paper' (the teacher continued with the PET branch dropped) or 'small'."""
    pet_suvr_scale: float = 3.0
    """PET model input = clip(SUVR / this, 0, 1) (an SUVR of this value or more is white)."""
    cls_token: Literal["pre-norm", "post-norm"] = "pre-norm"
    """Slice embedding: the CLS token of the last block before the final LayerNorm, as the authors' scripts take it ('pre-norm'), or after it ('post-norm', bundles made before this setting)."""


@dataclass
class TrainConfig:
    folds: int = 5
    """Outer cross-validation folds (StratifiedGroupKFold by subject)."""
    split_seed: int = 42
    """Seed of the cross-validation split (kept separate so splits match the paper's)."""
    threshold_rule: Literal["f1", "youden"] = "f1"
    """Decision threshold chosen on validation data: 'f1' or 'youden'."""
    calibration: Literal["auto", "platt", "temperature", "isotonic", "none"] = "auto"
    """Probability calibration of each fold's model on its validation part: 'auto' (isotonic from 1,000 validation sessions, else Platt), 'platt', 'temperature', 'isotonic' or 'none'."""
    rule_out_sensitivity: float = 0.90
    """Rule-out zone: below the threshold that keeps this sensitivity on validation data."""
    rule_in_specificity: float = 0.90
    """Rule-in zone: from the threshold that keeps this specificity on validation data."""
    cv_group_column: str | None = field(default=None, metadata=cli("--cv-group-column", metavar="COLUMN"))
    """Leave-group-out cross-validation: whole groups of this column (e.g. site; participants.tsv, sessions.tsv, phenotype/ or --labels-file) are held out together instead of subject-wise folds."""
    subgroup_columns: tuple[str, ...] = field(default=(), metadata=cli("--subgroup-column", metavar="COLUMN"))
    """Columns (same tables) whose values get their own out-of-fold metrics, besides the PET tracer."""
    negatives: Literal["random", "hard"] = "random"
    """Phase-1 negative choice among Centiloid-valid candidates: 'random' or 'hard'."""
    phase0: bool = True
    """Run phase 0, teacher classification pre-training (--no-phase0: the ablation)."""
    triplet: bool = True
    """Run phase 1, triplet contrastive learning (--no-triplet: the ablation)."""
    distill: bool = True
    """Distil the student from the teacher (--no-distill: student trained on labels only)."""
    feature_kd: bool = True
    """Use the feature-level distillation loss."""
    logit_kd: bool = True
    """Use the logit-level distillation loss."""
    phase0_epochs: int = 30
    """Phase 0: maximum epochs (--sloppy: 2)."""
    phase1_epochs: int = 15
    """Phase 1: maximum epochs (--sloppy: 2)."""
    phase2_epochs: int = 100
    """Phase 2: maximum epochs (--sloppy: 3)."""
    batch_size: int = 6
    """Teacher batch size (sessions)."""
    student_batch_size: int = 10
    """Student batch size (sessions)."""
    effective_batch: int = 30
    """Gradient accumulation target."""
    lr_scale: float = 1.0
    """Multiplier on every learning rate of the method, tuned for the pretrained ViT-B (--sloppy: 10)."""
    workers: int = 0
    """DataLoader worker processes (0 = load in the main process)."""
    augment: bool = True
    """Train-time augmentation, identical for the MRI and PET of a sample (--no-augment lets the frozen blocks' output be reused)."""
    bf16: bool = True
    """bf16 autocast on CUDA."""
    resume: bool = False
    """Continue from the last checkpoint of an interrupted group run."""
    phase0_patience: int = 5
    """Phase 0: epochs without a better validation score before stopping."""
    phase1_patience: int = 3
    """Phase 1: epochs without a better validation score before stopping."""
    phase2_patience: int = 25
    """Phase 2: epochs without a better validation score before stopping."""
    monitor: Literal["f1", "auc"] = "f1"
    """Validation score for early stopping, best epoch and LR plateau: 'f1' (F1 at 0.5, the method's) or 'auc'."""
    negative_min_delta: float = 5.0
    """Phase 1: a negative's Centiloid differs from the anchor's by at least this."""
    negative_fallbacks: tuple[float, ...] = (15.0, 10.0, 5.0, 2.5, 1.0)
    """Phase 1: Centiloid-difference ladder; rungs below the minimum are tried in turn when no negative qualifies."""
    semi_hard: bool = False
    """With negatives 'hard': the closest negative farther than the positive, not the closest one."""
    weak_teacher_auc: float = 0.6
    """A teacher with a validation AUC below this is reported loudly as near chance."""
    bootstrap: int = 1000
    """Bootstrap resamples for the 95% CI of the AUC (metrics table and report)."""
    cache_frozen: bool = True
    """Reuse the frozen encoder blocks' output for un-augmented inputs (validation, test, all when --no-augment)."""
    cache_frozen_gib: float = 4.0
    """Memory budget of that cache per process (GiB; ViT-B: 15 MiB per session and modality on the CPU)."""
    recipe: Recipe = field(default_factory=Recipe)

    def validate(self) -> None:
        if self.lr_scale <= 0:
            raise UsageError(f"--lr-scale must be positive, got {self.lr_scale}")
        if self.folds < 2:
            raise UsageError(f"--folds must be >= 2, got {self.folds}")
        if self.distill and not (self.phase0 or self.triplet):
            raise UsageError("distillation needs a trained teacher: keep phase 0 or the triplet phase, "
                             "or train a label-only student (--no-distill)")
        if min(self.batch_size, self.student_batch_size, self.effective_batch) < 1 or self.workers < 0:
            raise UsageError("batch sizes must be >= 1 and workers >= 0")
        if min(self.phase0_epochs, self.phase1_epochs, self.phase2_epochs) < 0 or min(
                self.phase0_patience, self.phase1_patience, self.phase2_patience) < 1:
            raise UsageError("epochs must be >= 0 and patience >= 1")
        if self.phase2_epochs < 1:
            raise UsageError("the student needs at least one phase-2 epoch")
        for name in ("rule_out_sensitivity", "rule_in_specificity"):
            if not 0 < getattr(self, name) <= 1:
                raise UsageError(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(self, name)}")
        if self.negative_min_delta < 0 or any(v < 0 for v in self.negative_fallbacks):
            raise UsageError("Centiloid differences for negatives must be >= 0")


@dataclass
class InferConfig:
    saliency: tuple[str, ...] = field(default=SALIENCY_METHODS, metadata=cli(
        "--saliency", choices=SALIENCY_METHODS + ("none",), parse="bids_amyloid.config.options:parse_saliency"))
    """Saliency maps per session and contrast: 'gradcam' and/or 'gradient', or 'none'."""
    native_saliency: bool = True
    """Also map the saliency onto the native T1w grid (inverse of the template transform)."""
    cpu_precision: Literal["auto", "float32", "bf16"] = "auto"
    """Prediction precision on the CPU: 'auto' = the faster of float32 and bf16 autocast, measured by a short probe (CUDA is always bf16)."""
    saliency_gradient: Literal["folds", "ensemble"] = "folds"
    """Input-gradient map of each fold's logit ('folds') or of the ensemble's mean logit ('ensemble': one backward through the shared blocks, faster)."""

    def validate(self) -> None:
        bad = [m for m in self.saliency if m not in SALIENCY_METHODS]
        if bad:
            raise UsageError(f"unknown saliency method(s) {bad}; choose from {list(SALIENCY_METHODS)}")
