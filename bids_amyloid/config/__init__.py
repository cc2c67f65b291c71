"""One typed configuration for a whole run.

Every setting lives in these dataclasses with its default and a one-line docstring (the string
literal right below each field); the command line is generated from them (``config.options``),
:meth:`Config.validate` checks them once, and every run saves them next to its outputs, so a run
can be repeated exactly (``--config FILE``). The numbers default to the published method.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bids_amyloid.config.fields import build, cli, field_docs, get, jsonable, put, settings, settings_fingerprint
from bids_amyloid.config.recipe import Phase0Recipe, Phase1Recipe, Phase2Recipe, Recipe
from bids_amyloid.config.sections import InferConfig, LabelConfig, ModelConfig, PreprocessConfig, TrainConfig
from bids_amyloid.errors import UsageError, read_option_json

__all__ = ["CONTRASTS", "TEMPLATE_SPACE", "Config", "InferConfig", "LabelConfig", "ModelConfig", "Phase0Recipe",
           "Phase1Recipe", "Phase2Recipe", "PreprocessConfig", "Recipe", "TrainConfig", "clean_label",
           "config_from_dict", "field_docs", "load_config_file", "settings", "settings_fingerprint"]

CONTRASTS = ("T1w", "T2w", "FLAIR", "T2starw")
"""MRI contrasts the app understands, as BIDS suffixes."""

TEMPLATE_SPACE = "MNI152NLin2009aSym"
"""BIDS/TemplateFlow name of the template nilearn ships (ICBM152 2009a nonlinear symmetric)."""

SLOPPY = {("model", "backbone"): "tiny", ("train", "lr_scale"): 10.0, ("train", "phase0_epochs"): 2,
          ("train", "phase1_epochs"): 2, ("train", "phase2_epochs"): 3, ("preprocess", "max_voxel_mm"): 2.5,
          ("preprocess", "max_voxel_thick_mm"): 8.5}
"""What --sloppy (TESTING ONLY) sets unless the option is given: the tiny random backbone, a few
epochs at 10x the method's learning rates (a few epochs at the method's rates leave the tiny heads
where they started; benchmarks/training.py: teacher fold AUC 0.97 with 10), and coarse voxels."""

LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
POSITIONAL = "a positional argument"


def clean_label(value: str, prefix: str) -> str:
    """Strip an optional ``sub-``/``ses-`` prefix and reject anything but a BIDS label.

    BIDS labels are alphanumeric, so this also stops path traversal (``../``) through labels.
    """
    label = value[len(prefix):] if value.startswith(prefix) else value
    if not LABEL_RE.match(label):
        raise UsageError(f"invalid label {value!r}: BIDS labels are letters and digits only")
    return label


@dataclass
class Config:
    bids_dir: Path = field(metadata=cli(hidden=POSITIONAL))
    """Input BIDS dataset (read-only)."""
    output_dir: Path = field(metadata=cli(hidden=POSITIONAL))
    """Derivatives folder."""
    analysis_level: str = field(metadata=cli(hidden=POSITIONAL))
    """'participant' or 'group'."""
    work_dir: Path | None = field(default=None, metadata=cli("-w", "--work-dir", metavar="DIR"))
    """Scratch folder (PyBIDS index, temporary files, training checkpoints); default OUTPUT_DIR-work beside OUTPUT_DIR."""
    participant_labels: list[str] = field(default_factory=list, metadata=cli(
        "--participant-label", "--participant_label", metavar="LABEL"))
    """Subjects to process, with or without 'sub-'; empty = all."""
    session_labels: list[str] = field(default_factory=list, metadata=cli(
        "--session-label", "--session_label", metavar="LABEL"))
    """Sessions to process, with or without 'ses-'; empty = all."""
    contrasts: list[str] = field(default_factory=lambda: ["T1w"], metadata=cli("--contrast", choices=CONTRASTS))
    """MRI contrasts to process / model."""
    bids_filter_file: Path | None = field(default=None, metadata=cli(
        "--bids-filter-file", "--bids_filter_file", metavar="FILE"))
    """JSON of PyBIDS queries per contrast, e.g. {"T1w": {"acquisition": "mprage"}, "pet": {"run": 1}}."""
    pet_tracer_map: dict[str, str] = field(default_factory=dict, metadata=cli(
        "--pet-tracer", metavar="LABEL=FAMILY", parse="bids_amyloid.bids.tracers:parse_tracer_map"))
    """Extra PET tracer labels: LABEL=FAMILY (PiB, florbetapir, florbetaben, flutemetamol, NAV4694) or LABEL=skip."""
    mri_pet_max_days: float = field(default=365.0, metadata=cli("--mri-pet-max-days", metavar="DAYS"))
    """A PET session without MRI is paired only with an MRI session at most this many days away."""
    skip_bids_validation: bool = field(default=False, metadata=cli("--skip-bids-validation", "--skip_bids_validation"))
    """Do not run the BIDS validator on the input."""
    nprocs: int = field(default=1, metadata=cli("--nprocs", "--n_cpus"))
    """Sessions processed in parallel."""
    omp_nthreads: int = 1
    """Threads per process (ANTs/ITK, torch)."""
    mem_gb: float | None = field(default=None, metadata=cli("--mem", "--mem_gb", metavar="GB"))
    """Memory limit in GiB; the run refuses settings that would exceed it."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N' (an unavailable GPU falls back to the CPU with a warning)."""
    seed: int = field(default=1234, metadata=cli("--random-seed"))
    """Master seed: derives the NumPy, torch and ANTs seeds (recorded in every sidecar)."""
    sloppy: bool = False
    """TESTING ONLY: cheap registration, the tiny random backbone, few epochs, coarse voxels accepted."""
    overwrite: bool = False
    """Recompute outputs that already exist."""
    model_path: Path | None = field(default=None, metadata=cli("--model", metavar="PATH"))
    """Participant level: model bundle (or group output holding one) used for prediction."""
    verbose: int = field(default=0, metadata=cli(hidden="-v/--verbose, counted"))
    """Logging verbosity (0 info, 1+ debug and tracebacks)."""
    labels: LabelConfig = field(default_factory=LabelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)

    def validate(self) -> Config:
        """Check and normalise every setting once; raise UsageError naming the bad value."""
        if self.analysis_level not in ("participant", "group"):
            raise UsageError(f"unknown analysis level {self.analysis_level!r}", exit_code=17)
        bad = [c for c in self.contrasts if c not in CONTRASTS]
        if bad:
            raise UsageError(f"unknown contrast(s) {bad}; choose from {list(CONTRASTS)}")
        self.contrasts = list(dict.fromkeys(self.contrasts))
        self.participant_labels = [clean_label(v, "sub-") for v in self.participant_labels]
        self.session_labels = [clean_label(v, "ses-") for v in self.session_labels]
        for s in settings(Config):
            value = get(self, s.path)
            if isinstance(value, Path):
                put(self, s.path, value.absolute())
        if self.nprocs < 1 or self.omp_nthreads < 1:
            raise UsageError("--nprocs and --omp-nthreads must be >= 1")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise UsageError(f"--mem must be positive, got {self.mem_gb}")
        if self.mri_pet_max_days < 0:
            raise UsageError(f"--mri-pet-max-days must be >= 0, got {self.mri_pet_max_days}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise UsageError(f"unknown device {self.device!r}")
        if not 1 <= self.model.input_slices <= self.preprocess.n_slices:
            raise UsageError(f"--input-slices must be between 1 and the {self.preprocess.n_slices} extracted slices, "
                             f"got {self.model.input_slices}")
        self.preprocess.validate()
        self.train.validate()
        self.infer.validate()
        return self

    def apply_sloppy(self, explicit: set[tuple[str, ...]]) -> None:
        """The --sloppy settings (:data:`SLOPPY`) for every one not given explicitly."""
        for path, value in SLOPPY.items():
            if path not in explicit or path == ("model", "backbone"):
                put(self, path, value)

    @property
    def resolved_work_dir(self) -> Path:
        return self.work_dir or self.output_dir.parent / f"{self.output_dir.name}-work"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of :meth:`Config.to_dict` (paths and tuples restored from their field types)."""
    return build(Config, data)


def load_config_file(path: Path) -> Config:
    """A configuration saved by a run (``logs/*_config.json``, or a bare ``Config.to_dict()``)."""
    payload = read_option_json(path, "--config")
    data = payload.get("config", payload) if isinstance(payload, dict) else None
    if not isinstance(data, dict) or not {"bids_dir", "output_dir", "analysis_level"} <= set(data):
        raise UsageError(f"--config {path}: not a bids_amyloid configuration (no bids_dir/output_dir/analysis_level)")
    return config_from_dict(data)
