"""OASIS-3's raw dynamic PET: 4-D frames, frame timing in draft / defective sidecars and _pet.tsv,
a perfusion-weighted early phase, head motion; and its static late-window companion."""
from __future__ import annotations

import json
import tracemalloc

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_amyloid.synth import deform, dynamic, pet

from helpers import synth_measure as sm


def _valid_pets(c) -> pd.DataFrame:
    return c.images[c.images["suffix"] == "pet"]


def _sidecar(c, row) -> dict:
    return json.loads((c.root / row.path.replace(".nii.gz", ".json")).read_text())


def _frames(row) -> np.ndarray:
    return np.array([[float(s), float(d)] for s, d in zip(row.frame_start.split(),
                                                           row.frame_duration.split(), strict=True)])


def _json_frames(meta: dict) -> np.ndarray | None:
    if "Time" in meta:  # the pre-standard draft: Time.FrameTimes {Labels, Units, Values}
        v = np.asarray(meta["Time"]["FrameTimes"]["Values"], dtype=float)
        return np.c_[v[:, 0], v[:, 1] - v[:, 0]]
    if "FrameTimesStart" in meta:
        return np.c_[meta["FrameTimesStart"], meta["FrameDuration"]].astype(float)
    return None


def _window_mean(data: np.ndarray, fr: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    w = dynamic.window_weights(fr, window)
    return (data * w).sum(-1) / w.sum()


def test_raw_4d_frame_counts_match_sidecar_and_tsv(oasis):
    for row in _valid_pets(oasis).itertuples():
        img = nib.load(oasis.root / row.path)
        n = img.shape[3] if img.ndim == 4 else 1
        fr = _frames(row)
        assert n == row.n_frames == len(fr) > 1  # every OASIS-3 PET here is dynamic
        tsv = pd.read_csv(oasis.root / row.path.replace(".nii.gz", ".tsv"), sep="\t")
        assert list(tsv.columns) == ["frame_start", "frame_end"]
        assert np.allclose(tsv.to_numpy(float), np.c_[fr[:, 0], fr.sum(1)])
        meta = _sidecar(oasis, row)
        js = _json_frames(meta)
        if js is not None:
            assert len(js) == n and np.allclose(js[:, 0], fr[:, 0])


def test_pib_0_70_and_av45_50_70_protocols(oasis):
    pets = _valid_pets(oasis)
    pib = pets[(pets.tracer == "PiB") & (pets.n_frames == 33)]
    assert len(pib) >= 2
    for row in pib.itertuples():
        fr = _frames(row)
        assert fr[0, 0] == 0 and fr[-1].sum() == 4200 and list(fr[:4, 1]) == [15] * 4
    for row in pets[pets.tracer == "AV45"].itertuples():
        assert list(_frames(row)[:, 0]) == [3000, 3300, 3600, 3900]


def test_late_window_mean_matches_static_not_the_all_frames_mean(oasis):
    """Unweighted averaging of all frames mixes the perfusion-weighted early frames in."""
    pets = _valid_pets(oasis)
    rows = pets[(pets.tracer == "PiB") & (pets.n_frames == 33)]
    for row in rows.itertuples():
        data = np.asanyarray(nib.load(oasis.root / row.path).dataobj, dtype=np.float32)
        static = np.asanyarray(nib.load(oasis.root / row.static_path).dataobj, dtype=np.float32)
        window = tuple(float(v) for v in row.suvr_window.split())
        late, every = _window_mean(data, _frames(row), window), data.mean(-1)
        brain = static > 0.4 * np.percentile(static, 99.5)
        corr = lambda a: np.corrcoef(a[brain], static[brain])[0, 1]  # noqa: E731
        assert corr(late) > 0.85 and corr(late) > corr(every) + 0.2, (corr(late), corr(every))


def test_dynamic_suvr_agrees_with_static_companion(oasis, tmp_path):
    src = sm.source()
    pets = _valid_pets(oasis)
    rows = pets[pets.amyloid.astype(bool) & pets.covers_suvr_window.astype(bool)]
    assert len(rows) >= 5 and rows.static_path.notna().all()
    statics = oasis.images[oasis.images.suffix == "pet-static"]
    assert set(statics[statics.amyloid.astype(bool)].path) == set(rows.static_path)
    for row in rows.itertuples():
        img = nib.load(oasis.root / row.path)
        window = tuple(float(v) for v in row.suvr_window.split())
        late = _window_mean(np.asanyarray(img.dataobj, dtype=np.float32), _frames(row), window)
        path = tmp_path / "late.nii.gz"
        nib.save(nib.Nifti1Image(late, img.affine), path)
        dyn = sm.pet_suvr(sm.to_template(path, row.template_to_scanner, src), src)
        sta = sm.pet_suvr(sm.to_template(oasis.root / row.static_path, row.template_to_scanner, src),
                          src)
        assert dyn == pytest.approx(sta, rel=0.04)
        assert nib.load(oasis.root / row.static_path).ndim == 3


def test_draft_sidecars_nested_without_tracername(oasis):
    metas = [_sidecar(oasis, r) for r in _valid_pets(oasis).itertuples()]
    draft = [m for m in metas if "Time" in m]
    assert 0.3 <= len(draft) / len(metas) <= 0.7  # about half
    for m in draft:
        assert "TracerName" not in m and m["Modality"] == "PT"
        assert m["Tracer"]["Name"] in ("PIB", "AV45", "AV1451") and m["Tracer"]["Isotope"]
        assert m["Recon"]["MethodName"] == "OSEM"
        ft = m["Time"]["FrameTimes"]
        assert ft["Labels"] == ["frameStart", "frameEnd"] and ft["Units"] == ["s", "s"]


def test_standard_sidecar_real_world_defects(oasis):
    pets = _valid_pets(oasis)
    metas = {r.path: _sidecar(oasis, r) for r in pets.itertuples()}
    standard = {p: m for p, m in metas.items() if "TracerName" in m}
    assert any(m.get("InjectedRadioactivity") == "n/a" for m in standard.values())
    assert any(m["Units"] == "Bq/ml" for m in standard.values())
    assert any("TimeZero" not in m and "InjectionStart" not in m for m in standard.values())
    cumulative = [p for p, m in standard.items() if "FrameDuration" in m and np.allclose(
        m["FrameDuration"], np.add(m["FrameTimesStart"], _frames(pets[pets.path == p].iloc[0])[:, 1]))]
    assert len(cumulative) == 1  # END times stored as FrameDuration
    no_timing = [p for p, m in metas.items() if _json_frames(m) is None]
    assert len(no_timing) == 1  # the _pet.tsv is the only timing source
    assert (oasis.root / no_timing[0].replace(".nii.gz", ".tsv")).is_file()


def test_head_motion_per_frame_small_and_drifting(oasis):
    rows = _valid_pets(oasis)
    rows = rows[rows.motion_path.notna()]
    assert len(rows) == len(_valid_pets(oasis))
    for row in rows.itertuples():
        m = pd.read_csv(oasis.root / row.motion_path, sep="\t")
        assert len(m) == row.n_frames
        trans = m[["trans_x_mm", "trans_y_mm", "trans_z_mm"]].to_numpy()
        rot = m[["rot_x_deg", "rot_y_deg", "rot_z_deg"]].to_numpy()
        assert np.abs(trans).max() <= dynamic.MAX_SHIFT_MM and np.abs(rot).max() <= dynamic.MAX_ROT_DEG
        assert np.abs(trans).max() > 0.05  # the head does move
    # frames are not realigned: a late frame differs from the first by more than noise
    row = rows[rows.n_frames == 33].iloc[0]
    data = np.asanyarray(nib.load(oasis.root / row.path).dataobj, dtype=np.float32)
    assert not np.allclose(data[..., -1], data[..., -2])


def test_kinetics_early_perfusion_late_plateau():
    fr = dynamic.frames("full", pet.TRACERS["PiB"])
    early, late = dynamic.early_curve(fr), dynamic.late_curve(fr)
    assert early[fr[:, 0] >= 1800].max() < 1e-3 * early.max()  # negligible after 30 min
    inside = dynamic.window_weights(fr, pet.TRACERS["PiB"].suvr_window_s) > 0
    assert late[inside].min() > 0.99 and early[inside].max() < 1e-8
    assert early[:12].mean() > late[:12].mean()  # the first minutes show flow, not binding
    assert not dynamic.covers(dynamic.frames("early", pet.TRACERS["PiB"]), (3000, 4200))
    assert dynamic.covers(dynamic.frames("late", pet.TRACERS["PiB"]), (3000, 4200))


def test_dynamic_pet_is_written_frame_by_frame(tmp_path):
    """A 33-frame PiB at 3 mm: far below the ~300 MB budget, and below one float32 copy of it."""
    src = sm.source()
    rng = np.random.default_rng(0)
    classes = list(src.classes)
    tr = pet.TRACERS["PiB"]
    amy, perf = pet.uptake_map(src, classes, 2.0, tr, rng), dynamic.perfusion_map(classes)
    fr = dynamic.frames("full", tr)
    grid = deform.make_grid(rng, (3.0, 3.0, 3.0), pet.FOV_MM, deform.HEAD_CENTER, "LPS")
    disp = np.zeros((3, *deform.coarse_shape(src.shape, src.coarse_factor)), np.float32)
    tracemalloc.start()
    try:
        img, motion = dynamic.write_dynamic(tmp_path / "dyn.nii.gz", src, perf, amy, fr, grid,
                                            np.eye(4), disp, rng, 7.0, 5000.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    full = np.prod(grid.shape) * len(fr) * 4
    assert img.shape == (*grid.shape, 33) and motion.shape == (33, 6)
    assert peak < min(300 * 2**20, full), (peak / 2**20, full / 2**20)
    data = np.asanyarray(img.dataobj)
    assert img.get_data_dtype() == np.int16 and np.isfinite(data).all() and data.max() > 0
