"""One typed configuration for a whole run.

Every setting lives here with its default and a one-line docstring (the string literal right
below each field). The CLI builds a :class:`Config`, :meth:`Config.validate` checks it, and
:func:`save_config` writes it next to every output, so a run can be repeated from its outputs.
The numbers default to the published method (see README, "Method").
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bids_amyloid.errors import UsageError

CONTRASTS = ("T1w", "T2w", "FLAIR", "T2starw")
"""MRI contrasts the app understands, as BIDS suffixes."""

TEMPLATE_SPACE = "MNI152NLin2009aSym"
"""BIDS/TemplateFlow name of the template nilearn ships (ICBM152 2009a nonlinear symmetric)."""


@dataclass
class LabelConfig:
    centiloid_column: str = "centiloid"
    """Column holding Centiloid values (matched case-insensitively)."""
    centiloid_threshold: float = 20.6
    """A session is amyloid positive when its Centiloid is strictly greater than this."""
    label_column: str | None = None
    """Column with a ready binary status (0/1, positive/negative); overrides the Centiloid rule."""
    labels_file: Path | None = None
    """External label table (TSV or CSV) keyed by participant_id [and session_id]; wins over the dataset's tables."""


@dataclass
class PreprocessConfig:
    registration: str = "affine"
    """T1w -> template transform: 'affine' (default) or 'syn' (affine + SyN)."""
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
    suvr_window: dict[str, tuple[float, float]] = field(default_factory=dict)
    """SUVR window (minutes after injection) per tracer family, 'all' for every family; empty = each family's default."""
    realign_frames: bool = True
    """Realign the window frames of a dynamic PET to each other (rigid, ANTs) before averaging them."""
    centiloid_estimate: bool = True
    """Write a global cortical SUVR and a Centiloid ESTIMATE into the PET sidecar (needs the AAL atlas)."""
    qc_figures: bool = True
    """Write QC figures (SVG) per session into sub-X/figures/."""


@dataclass
class ModelConfig:
    backbone: str = "biomedclip"
    """'biomedclip' (ViT-B/16, the method) or 'tiny' (random weights, TESTING ONLY)."""
    backbone_weights: Path | None = None
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
    student: str = "paper"
    """Student layout: 'paper' (same as the teacher, PET branch dropped) or 'small'."""
    pet_suvr_scale: float = 3.0
    """PET model input = clip(SUVR / this, 0, 1) (an SUVR of this value or more is white)."""


@dataclass
class TrainConfig:
    folds: int = 5
    """Outer cross-validation folds (StratifiedGroupKFold by subject)."""
    split_seed: int = 42
    """Seed of the cross-validation split (kept separate so splits match the paper's)."""
    threshold_rule: str = "f1"
    """Decision threshold chosen on validation data: 'f1' or 'youden'."""
    negatives: str = "random"
    """Phase-1 negative choice among Centiloid-valid candidates: 'random' or 'hard'."""
    phase0: bool = True
    """Run phase 0 (teacher classification pre-training)."""
    triplet: bool = True
    """Run phase 1 (triplet contrastive learning)."""
    distill: bool = True
    """Distil the student from the teacher (False: student trained on labels only)."""
    feature_kd: bool = True
    """Use the feature-level distillation loss."""
    logit_kd: bool = True
    """Use the logit-level distillation loss."""
    phase0_epochs: int = 30
    """Phase 0: maximum epochs."""
    phase1_epochs: int = 15
    """Phase 1: maximum epochs."""
    phase2_epochs: int = 100
    """Phase 2: maximum epochs."""
    batch_size: int = 6
    """Teacher batch size (sessions)."""
    student_batch_size: int = 10
    """Student batch size (sessions)."""
    effective_batch: int = 30
    """Gradient accumulation target."""
    lr_scale: float = 1.0
    """Multiplier on every learning rate of the method (the method's are tuned for the pretrained ViT-B)."""
    workers: int = 0
    """DataLoader worker processes (0 = load in the main process)."""
    augment: bool = True
    """Train-time augmentation (identical for the MRI and PET of a sample)."""
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
    monitor: str = "f1"
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
    """Bootstrap resamples for the 95% CI of the AUC."""
    cache_frozen: bool = True
    """Reuse the frozen encoder blocks' output for un-augmented inputs (validation, test, all when --no-augment)."""
    cache_frozen_gib: float = 4.0
    """Memory budget of that cache per process (GiB; ViT-B: 15 MiB per session and modality on the CPU)."""


@dataclass
class InferConfig:
    saliency: tuple[str, ...] = ("gradcam", "gradient")
    """Saliency maps per session and contrast: 'gradcam' and/or 'gradient'; empty = none."""
    native_saliency: bool = True
    """Also map the saliency onto the native T1w grid (inverse of the template transform)."""
    cpu_bf16: bool = True
    """bf16 autocast on CPUs with native bf16 (AVX512-BF16/AMX; CUDA always bf16): 2-3x faster, |dp| < 0.002."""


@dataclass
class Config:
    bids_dir: Path
    """Input BIDS dataset (read-only)."""
    output_dir: Path
    """Derivatives folder."""
    analysis_level: str
    """'participant' or 'group'."""
    work_dir: Path | None = None
    """Scratch folder (PyBIDS index, temporary files); default OUTPUT_DIR/../work-bids_amyloid."""
    participant_labels: list[str] = field(default_factory=list)
    """Subjects to process (without 'sub-'); empty = all."""
    session_labels: list[str] = field(default_factory=list)
    """Sessions to process (without 'ses-'); empty = all."""
    contrasts: list[str] = field(default_factory=lambda: ["T1w"])
    """MRI contrasts to process / model."""
    bids_filter_file: Path | None = None
    """JSON file with PyBIDS queries per contrast (e.g. {"T1w": {"acquisition": "mprage"}})."""
    pet_tracer_map: dict[str, str] = field(default_factory=dict)
    """Extra PET tracer labels: label -> tracer family key, or 'skip' for a non-amyloid tracer."""
    mri_pet_max_days: float = 365.0
    """A PET session without MRI is paired only with an MRI session at most this many days away."""
    skip_bids_validation: bool = False
    """Do not run the BIDS validator on the input."""
    nprocs: int = 1
    """Sessions processed in parallel."""
    omp_nthreads: int = 1
    """Threads per process (ANTs/ITK, torch)."""
    mem_gb: float | None = None
    """Memory limit in GiB; the run refuses settings that would exceed it."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""
    seed: int = 1234
    """Master seed: derives the NumPy, torch and ANTs seeds."""
    sloppy: bool = False
    """TESTING ONLY: cheaper registration and tiny model."""
    overwrite: bool = False
    """Recompute outputs that already exist."""
    model_path: Path | None = None
    """Model bundle (or group output holding one) used for participant-level inference."""
    verbose: int = 0
    """Logging verbosity (0 info, 1+ debug)."""
    labels: LabelConfig = field(default_factory=LabelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)

    def validate(self) -> "Config":
        """Check values that argparse cannot; raise UsageError naming the bad value."""
        if self.analysis_level not in ("participant", "group"):
            raise UsageError(f"unknown analysis level {self.analysis_level!r}", exit_code=17)
        bad = [c for c in self.contrasts if c not in CONTRASTS]
        if bad:
            raise UsageError(f"unknown contrast(s) {bad}; choose from {list(CONTRASTS)}")
        if self.nprocs < 1 or self.omp_nthreads < 1:
            raise UsageError("--nprocs and --omp-nthreads must be >= 1")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise UsageError(f"--mem must be positive, got {self.mem_gb}")
        if self.preprocess.registration not in ("affine", "syn"):
            raise UsageError(f"unknown registration {self.preprocess.registration!r}")
        if self.model.backbone not in ("biomedclip", "tiny"):
            raise UsageError(f"unknown backbone {self.model.backbone!r}")
        if self.train.negatives not in ("random", "hard"):
            raise UsageError(f"unknown negative sampling {self.train.negatives!r}")
        if self.train.threshold_rule not in ("f1", "youden"):
            raise UsageError(f"unknown threshold rule {self.train.threshold_rule!r}")
        if self.train.lr_scale <= 0:
            raise UsageError(f"--lr-scale must be positive, got {self.train.lr_scale}")
        if self.train.folds < 2:
            raise UsageError(f"--folds must be >= 2, got {self.train.folds}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise UsageError(f"unknown device {self.device!r}")
        lo, hi = self.preprocess.slice_band
        if not 0.0 <= lo < hi <= 1.0:
            raise UsageError(f"slice band must satisfy 0 <= lo < hi <= 1, got {self.preprocess.slice_band}")
        if self.mri_pet_max_days < 0:
            raise UsageError(f"--mri-pet-max-days must be >= 0, got {self.mri_pet_max_days}")
        for family, window in self.preprocess.suvr_window.items():
            if len(window) != 2 or not 0 <= window[0] < window[1]:
                raise UsageError(f"--suvr-window {family}={window}: need 0 <= START < END (minutes)")
        if not 1 <= self.model.input_slices <= self.preprocess.n_slices:
            raise UsageError(f"--input-slices must be between 1 and the {self.preprocess.n_slices} extracted slices, "
                             f"got {self.model.input_slices}")
        return self

    @property
    def resolved_work_dir(self) -> Path:
        return self.work_dir or self.output_dir.parent / f"{self.output_dir.name}-work"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of :meth:`Config.to_dict` (paths and tuples restored from their field types)."""
    return _build(Config, data)


def _build(cls: type, data: dict[str, Any]) -> Any:
    import typing

    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value)
        elif value is not None and "Path" in str(hint):
            value = Path(value)
        elif isinstance(value, list) and "tuple" in str(hint):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstrings of a config dataclass, keyed by field name (used by --help)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = str(nxt.value.value)  # type: ignore[union-attr]
    return docs


def save_config(config: Config, path: Path) -> None:
    """Write the config with version and seeds (atomically) next to an output."""
    from bids_amyloid import __version__
    from bids_amyloid.bids.io import atomic_write_text

    payload = {"bids_amyloid_version": __version__, "config": config.to_dict()}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
