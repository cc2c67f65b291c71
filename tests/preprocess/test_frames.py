"""Dynamic PET to a static image: window frames, realignment, duration weights (real-data quirk 4)."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from bids_amyloid.bids.pettiming import read_timing
from bids_amyloid.bids.records import PetScan
from bids_amyloid.errors import DataError
from bids_amyloid.preprocess.frames import dynamic_to_static, static_fields, timing_error

from helpers.preprocessing import blob

DURATIONS = [60.0] * 10 + [300.0] * 10  # 0-10 min in 1-minute frames, then 10-60 min in 5-minute frames


@pytest.fixture(autouse=True)
def _seeded_ants():
    """ANTs seeded as the participant level seeds it: unseeded, the rigid registration of these small
    synthetic frames once diverged in CI (38.8 mm estimated for a 4.4 mm shift)."""
    from bids_amyloid.preprocess import register

    register.configure_ants(1234, 2)


def _scan(path, durations, window=(40.0, 60.0), tracer="PiB"):
    starts = list(np.cumsum([0.0] + durations[:-1]))
    timing, problems = read_timing({"FrameTimesStart": starts, "FrameDuration": durations}, path, len(durations))
    return PetScan(path, tracer, "PIB", "acq", len(durations), timing, tuple(problems), window)


def _dynamic(tmp_path, shifts_vox):
    """Early frames perfusion-like (uniform blob), late ones the 'amyloid' blob, each shifted by motion."""
    base = blob(shape=(40, 48, 36), zooms=(3.0, 3.0, 3.0))
    late = np.asarray(base.dataobj, dtype=np.float32)
    early = ndimage.gaussian_filter((late > 50).astype(np.float32) * 80.0, 1.0)
    frames = []
    for k, shift in enumerate(shifts_vox):
        image = early if k < 10 else late * (1.0 + 0.01 * (k - 10))  # the late signal still rises a little
        frames.append(ndimage.shift(image, shift, order=1))
    path = tmp_path / "sub-1_ses-1_acq-PIB_pet.nii.gz"
    nib.save(nib.Nifti1Image(np.stack(frames, axis=-1), base.affine), str(path))
    return path, late


def test_window_frames_realigned_and_weighted_by_duration(tmp_path):
    rng = np.random.default_rng(0)
    shifts = [np.zeros(3)] * 16 + [rng.uniform(-1.0, 1.0, 3) for _ in range(4)]  # head motion in the window
    path, late = _dynamic(tmp_path, shifts)
    scan = _scan(path, DURATIONS)
    realigned = dynamic_to_static(scan, scan.window_min, max_voxel_mm=6, realign=True, workdir=tmp_path)
    plain = dynamic_to_static(scan, scan.window_min, max_voxel_mm=6, realign=False, workdir=tmp_path)
    meta = realigned.meta
    assert meta["FramesUsed"] == [16, 17, 18, 19] and meta["WindowCoverage"] == pytest.approx(1.0)
    assert meta["FrameWeighting"] == "duration" and meta["FramesRealigned"] and len(meta["FrameMotion"]) == 4
    true_shift_mm = max(np.linalg.norm(s) * 3.0 for s in shifts[16:])
    assert 0.3 * true_shift_mm < meta["MaxFrameDisplacementMM"] < 3 * true_shift_mm + 1.0
    expected = late * np.mean([1.0 + 0.01 * k for k in range(6, 10)])  # the mean of the window frames, no motion
    brain = late > 50
    err_realigned = np.abs(np.asarray(realigned.image.dataobj) - expected)[brain].mean()
    err_plain = np.abs(np.asarray(plain.image.dataobj) - expected)[brain].mean()
    assert err_realigned < err_plain, (err_realigned, err_plain)
    all_frames = np.asarray(nib.load(str(path)).dataobj).mean(axis=3)  # what a naive reader averages
    assert np.abs(all_frames - expected)[brain].mean() > 3 * err_realigned


def test_weights_are_durations(tmp_path):
    path, _ = _dynamic(tmp_path, [np.zeros(3)] * 20)
    durations = DURATIONS[:18] + [100.0, 500.0]  # unequal last frames
    scan = _scan(path, durations, window=(45.0, 60.0))
    static = dynamic_to_static(scan, scan.window_min, max_voxel_mm=6, realign=False, workdir=tmp_path)
    data = np.asarray(nib.load(str(path)).dataobj)
    used = static.meta["FramesUsed"]
    w = np.asarray([durations[i] for i in used])
    np.testing.assert_allclose(np.asarray(static.image.dataobj), (data[..., used] * w).sum(-1) / w.sum(), rtol=1e-4)


def test_acquisition_that_misses_the_window_is_a_clear_error(tmp_path):
    path, _ = _dynamic(tmp_path, [np.zeros(3)] * 20)
    scan = _scan(path, DURATIONS, window=(50.0, 70.0))  # frames end at 60 min: half the window
    with pytest.raises(DataError) as err:
        dynamic_to_static(scan, scan.window_min, max_voxel_mm=6, realign=False, workdir=tmp_path)
    assert str(path) in str(err.value) and "cover 50% of the PiB SUVR window" in str(err.value) and "--suvr-window PiB=" in str(err.value)


def test_four_d_without_timing_is_a_clear_error(tmp_path):
    path, _ = _dynamic(tmp_path, [np.zeros(3)] * 20)
    scan = PetScan(path, "PiB", volumes=20, timing_problems=("no frame timing (...)",), window_min=(50.0, 70.0))
    message = timing_error(scan, scan.window_min)
    assert str(path) in message and "add FrameTimesStart and FrameDuration" in message


def test_static_image_outside_the_window_is_used_with_a_warning(tmp_path, caplog):
    timing, _ = read_timing({"FrameTimesStart": [1800], "FrameDuration": [1200]}, "p.nii.gz", 1)
    fields = static_fields(PetScan(tmp_path / "p.nii.gz", "PiB", timing=timing), (50.0, 70.0))
    assert fields["FramesTotal"] == 1 and fields["WindowCoverage"] == 0.0 and "not inside the PiB window" in caplog.text
