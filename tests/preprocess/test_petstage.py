"""A raw 4-D dynamic PiB gives the SUVR of the same session's static late-window scan (real-data quirk 4).

OASIS-3 PET is the raw 0-70 min dynamic series. The generator also writes the static 50-70 min
acquisition of the same session (``sourcedata/synth``); both go through the whole PET stage chain
(static image, rigid to the T1w, template, SUVR) on the same MRI derivatives.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from bids_amyloid.bids.layout import discover
from bids_amyloid.preprocess import preprocess_session
from bids_amyloid.bids.names import sidecar_of as sidecar_path

from helpers.preprocessing import make_config


@pytest.fixture(scope="module")
def dynamic_and_static(tmp_path_factory):
    from bids_amyloid.synth import generate_cohort

    root = tmp_path_factory.mktemp("oasis3")
    truth = generate_cohort(root / "bids", n_subjects=1, seed=3, resolution=2.0, contrasts=("T1w",),
                            layout="oasis3", tracers=("PiB",))
    config = make_config(truth.root, root / "out", skip_bids_validation=True)
    pet_session = next(s for s in discover(config).sessions if s.pet)
    dynamic = preprocess_session(pet_session, config)
    static_file = truth.root / truth.images.loc[truth.images.suffix == "pet-static", "path"].iloc[0]
    results = {"dynamic": dynamic}
    naive = root / "naive" / "sub-OAS30001_acq-PIB_pet.nii.gz"  # what a reader averaging ALL frames gets
    naive.parent.mkdir()
    raw = nib.load(str(pet_session.pet[0].path))
    nib.save(nib.Nifti1Image(np.asarray(raw.dataobj, dtype=np.float32).mean(axis=3), raw.affine), str(naive))
    for name, path in (("static", static_file), ("all frames", naive)):
        out = root / f"out-{name.replace(' ', '-')}"
        mri_dir = f"sub-{pet_session.subject}/ses-{pet_session.mri_session}"
        shutil.copytree(config.output_dir / mri_dir, out / mri_dir)  # the same MRI derivatives
        scan = replace(pet_session.pet[0], path=path, volumes=1, timing=None)
        results[name] = preprocess_session(replace(pet_session, pet=(scan,)), replace(config, output_dir=out))
    return results


def _suvr(result) -> np.ndarray:
    return np.asarray(nib.load(str(result.pet["PiB"].suvr)).dataobj, dtype=np.float32)


def test_dynamic_suvr_matches_the_static_late_window_scan(dynamic_and_static):
    brain = np.asarray(nib.load(str(dynamic_and_static["dynamic"].template_brain_mask)).dataobj) > 0
    p95 = {name: float(np.percentile(_suvr(r)[brain], 95)) for name, r in dynamic_and_static.items()}
    error = abs(p95["dynamic"] - p95["static"]) / p95["static"]
    naive_error = abs(p95["all frames"] - p95["static"]) / p95["static"]
    print(f"SUVR p95 in the brain: static {p95['static']:.3f}, dynamic {p95['dynamic']:.3f} ({error:.1%}), "
          f"all frames averaged {p95['all frames']:.3f} ({naive_error:.1%})")
    assert error < 0.03
    assert naive_error > 3 * error


def test_the_suvr_sidecar_records_frames_window_and_motion(dynamic_and_static):
    result = dynamic_and_static["dynamic"]
    meta = json.loads(sidecar_path(result.pet["PiB"].suvr).read_text())
    assert meta["SUVRWindowMin"] == [50.0, 70.0] and meta["FramesTotal"] == 33 and len(meta["FramesUsed"]) == 4
    assert meta["FrameWeighting"] == "duration" and meta["FramesRealigned"] and meta["MaxFrameDisplacementMM"] > 0
    assert meta["TracerFamily"] == "PiB" and meta["TracerIdentifiedFrom"] == "acq" and meta["TracerName"] == "PIB"
    assert meta["MRISession"] == "ses-d0000" and meta["MRIGapDays"] > 0 and meta["MRIPairingDatesFrom"] == "day label"
    static = json.loads(sidecar_path(result.pet["PiB"].static).read_text())
    assert len(static["FrameMotion"]) == 4 and "static" in result.pet["PiB"].static.name
