"""Shared fixtures: tiny hand-made BIDS datasets (fast, for discovery and CLI tests).

Realistic cohorts come from ``bids_amyloid.synth`` (see tests/synth and the end-to-end tests).
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


def write_nifti(path: Path, shape=(8, 8, 8), zooms=(1.0, 1.0, 1.0), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).random(shape, dtype=np.float32)
    affine = np.diag([*zooms, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def make_bids(root: Path, layout: dict, *, participants: list[dict] | None = None,
              sessions: dict[str, list[dict]] | None = None) -> Path:
    """``layout`` maps 'sub-01/ses-M000/anat/sub-01_ses-M000_T1w.nii.gz' -> zooms (or None for 1 mm)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny", "BIDSVersion": "1.10.0"}))
    for i, (rel, zooms) in enumerate(sorted(layout.items())):
        write_nifti(root / rel, zooms=zooms or (1.0, 1.0, 1.0), seed=i)
    if participants:
        cols = list(participants[0])
        lines = ["\t".join(cols)] + ["\t".join(str(r[c]) for c in cols) for r in participants]
        (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    for sub, rows in (sessions or {}).items():
        cols = list(rows[0])
        lines = ["\t".join(cols)] + ["\t".join(str(r[c]) for c in cols) for r in rows]
        (root / f"sub-{sub}" / f"sub-{sub}_sessions.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A converted random 'tiny' weights folder (from an open_clip-format .bin checkpoint)."""
    from bids_amyloid.models.weights import convert_checkpoint, write_random_checkpoint

    root = tmp_path_factory.mktemp("tiny-weights")
    ckpt = write_random_checkpoint(root / "open_clip_pytorch_model.bin", "tiny", seed=7)
    return convert_checkpoint(ckpt, root / "tiny", "tiny")


@pytest.fixture
def tiny_bids(tmp_path) -> Path:
    """Two subjects: sessions, two runs, two tracers, a PET-only session, labels in sessions.tsv."""
    anat = "sub-{s}/ses-{t}/anat/sub-{s}_ses-{t}{r}_{c}.nii.gz"
    pet = "sub-{s}/ses-{t}/pet/sub-{s}_ses-{t}_trc-{trc}_pet.nii.gz"
    layout = {
        anat.format(s="01", t="M000", r="", c="T1w"): None,
        anat.format(s="01", t="M000", r="", c="FLAIR"): (1.0, 1.0, 3.0),
        pet.format(s="01", t="M000", trc="11CPIB"): (2.0, 2.0, 2.0),
        pet.format(s="01", t="M012", trc="18FAV45"): (2.0, 2.0, 2.0),  # PET only: borrows M000's MRI (365 days)
        anat.format(s="02", t="M000", r="_run-1", c="T1w"): (1.2, 1.2, 1.2),
        anat.format(s="02", t="M000", r="_run-2", c="T1w"): (1.0, 1.0, 1.0),
        pet.format(s="02", t="M000", trc="11CPIB"): (2.0, 2.0, 2.0),
    }
    return make_bids(
        tmp_path / "bids",
        layout,
        participants=[{"participant_id": "sub-01", "age": 70}, {"participant_id": "sub-02", "age": 75}],
        sessions={
            "01": [{"session_id": "ses-M000", "Centiloid": 35.0}, {"session_id": "ses-M012", "Centiloid": "n/a"}],
            "02": [{"session_id": "ses-M000", "Centiloid": 20.6}],
        },
    )


@pytest.fixture(scope="session")
def cohort_2mm(tmp_path_factory):
    """A 4-subject synthetic cohort at 2 mm (sessions, runs, both tracers, non-RAS orientations)."""
    from bids_amyloid.synth import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort") / "bids", n_subjects=4, seed=0, resolution=2.0,
                           contrasts=("T1w", "T2w"))


@pytest.fixture
def no_real_weights(monkeypatch, tmp_path_factory):
    """No real weights folder is visible: $BIDS_AMYLOID_WEIGHTS unset, the default root empty.

    Not autouse: the model, inference and report tests request it through their own autouse fixture.
    """
    from bids_amyloid.models import weights

    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS_ROOT", tmp_path_factory.mktemp("no-weights"))


@pytest.fixture
def isolated_inference(no_real_weights):
    """No real weights; 2 torch threads; a fresh model cache per test (tests/infer, tests/report)."""
    import torch

    from bids_amyloid.infer import loading

    torch.set_num_threads(2)
    loading.clear_cache()
    yield
    loading.clear_cache()
