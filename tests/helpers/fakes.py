"""Fake slice caches and sessions for the training tests (tiny, CPU, seconds).

Positives are brighter in MRI and PET, so a toy model separates them quickly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bids_amyloid.bids.derivatives import Derivatives


def slice_cache_path(out_dir, subject, session, modality, tracer=None):
    """The MRI (or, with modality 'pet', the PET) slice cache of a session."""
    paths = Derivatives(out_dir).session(subject, session)
    return paths.pet_slices(tracer) if modality == "pet" else paths.slices(modality)
from bids_amyloid.bids.records import PetScan, Session
from bids_amyloid.config import Config, ModelConfig, TrainConfig

TRACER = "PiB"


def write_cache(path: Path, array: np.ndarray, means: list[float] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array.astype(np.float16))
    means = [float(m) for m in (array.reshape(len(array), -1).mean(axis=1) if means is None else means)]
    sidecar = {"SliceAxis": "x", "TemplateXIndex": list(range(80, 80 + len(array))), "SliceMean": means,
               "InPlaneShape": [233, 189]}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def fake_sessions(out_dir: Path, n_subjects: int = 8, *, n_slices: int = 6, size: int = 32, seed: int = 0,
                  with_pet: bool = True, sessions_per_subject: int = 1, contrast: str = "T1w",
                  labels: list[int] | None = None, write: bool = True) -> list[Session]:
    """Sessions (label alternates 0/1 by subject unless ``labels``) with slice caches in ``out_dir``
    (``write`` False: the records only, for caches written before)."""
    rng = np.random.default_rng(seed)
    sessions = []
    for i in range(n_subjects):
        sub = f"{i + 1:02d}"
        label = (i % 2) if labels is None else labels[i]
        for j in range(sessions_per_subject):
            ses = f"M{j:02d}" if sessions_per_subject > 1 else None
            centiloid = float(rng.uniform(40, 100) if label else rng.uniform(-10, 15))
            mri = rng.uniform(0.05, 0.5, (n_slices, size, size)) + 0.3 * label
            if write:
                write_cache(slice_cache_path(out_dir, sub, ses, contrast), mri)
            pets = ()
            if with_pet:
                pet = rng.uniform(0.8, 1.2, (n_slices, size, size)) + 1.0 * label
                if write:
                    write_cache(slice_cache_path(out_dir, sub, ses, "pet", TRACER), pet)
                pets = (PetScan(Path(f"/bids/sub-{sub}_trc-{TRACER}_pet.nii.gz"), TRACER),)
            anat = {contrast: Path(f"/bids/sub-{sub}_{contrast}.nii.gz")}
            sessions.append(Session(subject=sub, session=ses, anat=anat, mri_session=ses, pet=pets,
                                    centiloid=centiloid, label=label))
    return sessions


def tiny_config(tmp_path: Path, weights: Path | None = None, **train) -> Config:
    """A group config for the tiny backbone with 2 input slices and 1-epoch phases."""
    defaults = dict(folds=2, phase0_epochs=1, phase1_epochs=1, phase2_epochs=1, batch_size=2, student_batch_size=2,
                    effective_batch=4, bootstrap=20, augment=False)
    defaults.update(train)
    return Config(bids_dir=tmp_path / "bids", output_dir=tmp_path / "out", analysis_level="group",
                  work_dir=tmp_path / "work", skip_bids_validation=True, device="cpu",
                  model=ModelConfig(backbone="tiny", backbone_weights=weights, input_slices=2),
                  train=TrainConfig(**defaults))
