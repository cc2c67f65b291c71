"""Real-data layouts: each test names the quirk of the real dataset it reproduces
(/work/shared/reference/real-data.md: OASIS-3 download, Clinica adni-to-bids, OpenNeuro DLBS)."""
from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_amyloid.synth import layouts, load_truth

from helpers import synth_measure as sm


def _names(c, folder: str, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in c.root.glob(f"sub-*/ses-*/{folder}/{pattern}"))


def _pets(c) -> pd.DataFrame:
    return c.images[c.images["suffix"] == "pet"]


def _day(c, sub: str, ses: str) -> int:
    s = c.sessions
    return int(s.loc[(s.participant_id == sub) & (s.session_id == ses), "days"].iloc[0])


def test_default_pet_only_session_is_m006_within_a_year(cohort):
    s = cohort.sessions
    pet_only = s[(s.tracer != "n/a") & ~s.has_mri.astype(bool)]
    assert list(pet_only["session_id"]) == ["ses-M006"] and list(pet_only["days"]) == [183]


@pytest.mark.parametrize("name", ["oasis", "clinica", "openneuro"])
def test_pairing_truth_follows_the_365_day_rule(request, name):
    """Real data: MRI and PET in different sessions; the app pairs within 365 days or reports."""
    c = request.getfixturevalue(name)
    s = c.sessions
    assert c.parameters["layout"] == {"oasis": "oasis3", "clinica": "clinica-adni"}.get(name, name)
    unpaired = 0
    for row in s[(s.tracer != "n/a") & ~s.has_mri.astype(bool)].itertuples():
        mris = s[(s.participant_id == row.participant_id) & s.has_mri.astype(bool)]
        gaps = (mris["days"] - row.days).abs()
        if row.mri_session == "n/a":
            unpaired += 1
            assert (gaps > layouts.PAIR_MAX_DAYS).all()
        else:
            assert gaps[mris.session_id == row.mri_session].iloc[0] <= layouts.PAIR_MAX_DAYS
    assert unpaired >= 1
    same = s[(s.tracer != "n/a") & s.has_mri.astype(bool)]
    assert len(same) >= 1  # same-session (same-day) pairs occur too


# ---- OASIS-3 download ---------------------------------------------------------------------------
def test_oasis_subject_and_day_session_labels(oasis):
    subs = sorted(p.name for p in oasis.root.glob("sub-*") if p.is_dir())
    assert subs[:2] == ["sub-OAS30001", "sub-OAS30002"] and len(subs) == 6
    sessions = {p.name for p in oasis.root.glob("sub-*/ses-*")}
    assert all(re.fullmatch(r"ses-d\d{4}", s) for s in sessions) and "ses-d0000" in sessions


def test_oasis_session_design_cases(oasis):
    """(a) PET 30-300 days from its MRI, (b) same-day, (c) unpaired, (d) MRI-only follow-up,
    (e) two PET runs of one tracer, only the second covering the SUVR window."""
    s = oasis.sessions
    amy_only = s[(s.tracer != "n/a") & ~s.has_mri.astype(bool) & (s.mri_session != "n/a")]
    gaps = [abs(r.days - _day(oasis, r.participant_id, r.mri_session)) for r in amy_only.itertuples()]
    assert gaps and all(30 <= g <= 300 for g in gaps)
    assert ((s.tracer != "n/a") & s.has_mri.astype(bool)).any()
    assert ((s.tracer != "n/a") & (s.mri_session == "n/a")).any()
    follow = s[s.has_mri.astype(bool) & (s.tracer == "n/a") & (s.other_pet == "n/a") & (s.days > 0)]
    assert len(follow) >= 1
    runs = _pets(oasis).groupby(["participant_id", "session_id", "tracer"])
    split = [g for _, g in runs if len(g) == 2 and set(g["covers_suvr_window"]) == {True, False}]
    assert split and sorted(split[0]["run"]) == [1, 2]
    early = split[0][split[0]["covers_suvr_window"] == False]  # noqa: E712
    assert int(early["run"].iloc[0]) == 1


def test_oasis_anat_names_run01_tse_flair_deprecated_t2star(oasis):
    names = [n for n in _names(oasis, "anat", "*.nii.gz") if "_sess-" not in n]
    t1 = [n for n in names if n.endswith("_T1w.nii.gz")]
    assert t1 and all(re.search(r"_run-0[12]_T1w\.nii\.gz$", n) for n in t1)
    assert any("_run-02_T1w" in n for n in t1)  # a session with run-01 AND run-02
    assert any(n.endswith("_acq-TSE_T2w.nii.gz") for n in names)
    assert any(n.endswith("_FLAIR.nii.gz") for n in names)
    assert any(n.endswith("_T2star.nii.gz") for n in names)  # the deprecated suffix
    assert not any("T2starw" in n for n in names)
    for n in names:
        assert n.replace(".nii.gz", ".json") in _names(oasis, "anat", "*.json")


def test_oasis_one_file_named_sess(oasis):
    """Real OASIS-3: 'sub-OAS31459_sess-d0125_T1w' inside ses-d0125/anat/."""
    hits = sorted(oasis.root.glob("sub-*/ses-*/anat/*_sess-*"))
    assert [p.suffix for p in hits] == [".json", ".gz"]
    path = hits[1]
    label = re.search(r"_sess-(d\d{4})_", path.name).group(1)
    assert path.parent.parent.name == f"ses-{label}" and path.name.endswith("_T1w.nii.gz")
    assert nib.load(path).shape  # a real image


def test_oasis_pet_names_tracer_only_in_acq_and_run_numbers_not_per_tracer(oasis):
    names = _names(oasis, "pet", "*.nii.gz")
    assert names and not any("_trc-" in n for n in names)
    assert all(re.search(r"_acq-(PIB|AV45|AV1451)(_run-\d\d)?_pet\.nii\.gz$", n) for n in names)
    by_ses: dict[tuple[str, str], list[str]] = {}
    for p in oasis.root.glob("sub-*/ses-*/pet/*_acq-AV45*_pet.nii.gz"):
        by_ses.setdefault((p.parts[-4], p.parts[-3]), []).append(p.name)
    assert any(len(v) == 1 and "_run-02_" in v[0] for v in by_ses.values())


def test_oasis_failed_download_html_beside_a_good_run(oasis):
    bad = oasis.images[oasis.images["suffix"] == "pet-invalid"]
    assert len(bad) == 1
    path = oasis.root / bad["path"].iloc[0]
    assert path.name.endswith(".nii.gz") and path.read_bytes().startswith(b"<html>")
    with pytest.raises(Exception):
        nib.load(path).get_fdata()
    good = _pets(oasis)[(_pets(oasis).session_id == bad.session_id.iloc[0])
                        & (_pets(oasis).participant_id == bad.participant_id.iloc[0])]
    assert (good["tracer"] == bad["tracer"].iloc[0]).any()


def test_oasis_dataset_description_in_every_session_and_a_root_one(oasis):
    root = json.loads((oasis.root / "dataset_description.json").read_text())
    assert root["BIDSVersion"] and root["GeneratedBy"][0]["Name"] == "bids_amyloid-synth"
    for ses in oasis.root.glob("sub-*/ses-*"):
        desc = json.loads((ses / "dataset_description.json").read_text())
        assert desc["BIDSVersion"] == "1.0.1"


def test_oasis_labels_in_external_csv_keyed_by_pet_session(oasis):
    csv = pd.read_csv(oasis.root / "sourcedata/labels/OASIS3_amyloid_centiloid.csv", dtype=str,
                      keep_default_na=False)
    assert list(csv.columns) == ["oasis_session_id", "subject_id", "tracer",
                                 "Centiloid_fBP_TOT_CORTMEAN", "Centiloid_fSUVR_TOT_CORTMEAN",
                                 "Centiloid_fBP_rsf_TOT_CORTMEAN", "Centiloid_fSUVR_rsf_TOT_CORTMEAN"]
    assert set(csv["tracer"]) == {"PIB", "AV45"}
    av45 = csv[csv.tracer == "AV45"]
    assert (av45["Centiloid_fBP_TOT_CORTMEAN"] == "").all()
    assert (av45["Centiloid_fBP_rsf_TOT_CORTMEAN"] == "").all()
    assert (csv[csv.tracer == "PIB"]["Centiloid_fBP_TOT_CORTMEAN"] != "").all()
    assert (csv.values == "n/a").sum() == 1  # one missing value
    s = oasis.sessions
    amy = s[s.tracer != "n/a"]
    acq = {"PiB": "PIB", "AV45": "AV45"}
    keys = {f"{r.participant_id[4:]}_{acq[r.tracer]}_{r.session_id[4:]}": r.centiloid
            for r in amy.itertuples()}
    rows = dict(zip(csv["oasis_session_id"], csv["Centiloid_fSUVR_rsf_TOT_CORTMEAN"], strict=True))
    assert set(keys) < set(rows) and len(set(rows) - set(keys)) == 1  # one row without a PET
    assert all(float(rows[k]) == pytest.approx(v, abs=0.006) for k, v in keys.items())
    assert csv["oasis_session_id"].str.fullmatch(r"OAS3\d{4}_(PIB|AV45)_d\d{4}").all()


def test_oasis_no_labels_in_bids_tables(oasis):
    parts = pd.read_csv(oasis.root / "participants.tsv", sep="\t")
    assert list(parts.columns) == ["participant_id", "age", "sex"]
    assert not list(oasis.root.glob("sub-*/*_sessions.tsv"))
    assert json.loads(oasis.truth_json.read_text())["files"]["label_column"] == \
        "Centiloid_fSUVR_rsf_TOT_CORTMEAN"


def test_non_amyloid_pet_in_every_real_tree(oasis, clinica, openneuro):
    assert _names(oasis, "pet", "*_acq-AV1451*_pet.nii.gz")
    assert _names(clinica, "pet", "*_trc-18FFDG_rec-coregavg_pet.nii.gz")
    assert list(openneuro.root.glob("sub-*/ses-wave3/pet/*_trc-18FAV1451_run-1_pet.nii.gz"))
    for c in (oasis, clinica, openneuro):
        other = _pets(c)[_pets(c)["amyloid"] == False]  # noqa: E712
        assert len(other) and set(other["tracer_family"]) <= {"tau", "fdg"}
        s = c.sessions
        assert set(s.loc[s.other_pet != "n/a", "tracer"]) <= set(s.tracer)  # never labelled


# ---- Clinica adni-to-bids ------------------------------------------------------------------------
def test_clinica_names_and_missing_sidecars(clinica):
    subs = sorted(p.name for p in clinica.root.glob("sub-*") if p.is_dir())
    assert all(re.fullmatch(r"sub-ADNI\d{3}S\d{4}", s) for s in subs) and "sub-ADNI011S4105" in subs
    assert all(re.fullmatch(r"ses-M\d{3}", p.name) for p in clinica.root.glob("sub-*/ses-*"))
    anat = _names(clinica, "anat")
    assert not any(n.endswith("_T1w.json") for n in anat)  # ADNI T1w: no JSON
    assert any(n.endswith("_FLAIR.json") for n in anat)
    assert all(re.search(r"_ses-M\d{3}_(T1w|FLAIR)\.(nii\.gz|json)$", n) for n in anat)
    pets = _names(clinica, "pet")
    assert pets and all(n.endswith(".nii.gz") for n in pets)  # PET: no JSON
    assert any("_trc-18FAV45_pet" in n for n in pets) and any("_trc-18FFBB_pet" in n for n in pets)


def test_clinica_pet_is_3d_recentred_and_in_the_head(clinica):
    src = sm.source()
    gm, wm = src.classes[0], src.classes[1]
    for row in _pets(clinica).itertuples():
        img = nib.load(clinica.root / row.path)
        assert img.ndim == 3
        centre = img.affine @ np.r_[(np.asarray(img.shape) - 1) / 2.0, 1.0]
        assert np.abs(centre[:3]).max() < 1e-3  # origin re-centred
        back = sm.to_template(clinica.root / row.path, row.template_to_scanner, src)
        assert back[(gm + wm) > 0.9].mean() > 5 * back[src.classes.sum(0) < 0.05].mean()


def test_clinica_labels_in_sessions_tsv(clinica):
    for sub, rows in clinica.sessions.groupby("participant_id"):
        tsv = pd.read_csv(clinica.root / sub / f"{sub}_sessions.tsv", sep="\t", na_values="n/a",
                          keep_default_na=False)
        assert list(tsv.columns) == ["session_id", "age", "centiloid"]
        merged = tsv.merge(rows, on="session_id", suffixes=("", "_truth"))
        amy = merged["tracer"] != "n/a"
        assert merged.loc[~amy, "centiloid"].isna().all()
        assert np.allclose(merged.loc[amy, "centiloid"], merged.loc[amy, "centiloid_truth"])
    s = clinica.sessions
    pet = s[s.tracer != "n/a"]
    assert pet.has_mri.astype(bool).mean() > 0.5 and set(pet.tracer) == {"AV45", "FBB"}


# ---- OpenNeuro DLBS (ds004856) -------------------------------------------------------------------
def test_openneuro_names_waves_mprage_and_flair_as_t2w(openneuro):
    assert all(re.fullmatch(r"sub-\d+", p.name) for p in openneuro.root.glob("sub-*") if p.is_dir())
    assert {p.name for p in openneuro.root.glob("sub-*/ses-*")} == {"ses-wave1", "ses-wave2",
                                                                   "ses-wave3"}
    anat = _names(openneuro, "anat", "*.nii.gz")
    assert all(re.search(r"_acq-MPRAGE_run-\d_T1w", n) for n in anat if n.endswith("_T1w.nii.gz"))
    assert any(n.endswith("_acq-FLAIR_run-1_T2w.nii.gz") for n in anat)
    assert any(n.endswith("_acq-TSE_run-1_T2w.nii.gz") for n in anat)
    assert not any(n.endswith("_FLAIR.nii.gz") for n in anat)


def test_openneuro_static_pet_whose_json_lists_two_frames(openneuro):
    rows = _pets(openneuro)[_pets(openneuro)["tracer"] == "AV45"]
    assert len(rows)
    for row in rows.itertuples():
        path = openneuro.root / row.path
        assert re.search(r"_trc-18FAV45_run-1_pet\.nii\.gz$", path.name)
        assert nib.load(path).ndim == 3
        meta = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert meta["FrameTimesStart"] == [3000, 3600] and meta["FrameDuration"] == [600, 0]


def test_openneuro_labels_only_outside_without_prefixes(openneuro):
    lab = pd.read_csv(openneuro.root / "sourcedata/labels/amyloid_labels.tsv", sep="\t", dtype=str)
    assert list(lab.columns) == ["participant_id", "session_id", "centiloid"]
    assert not lab.participant_id.str.startswith("sub-").any()
    assert not lab.session_id.str.startswith("ses-").any()
    s = openneuro.sessions
    amy = s[s.tracer != "n/a"]
    got = {("sub-" + p, "ses-" + q): float(v) for p, q, v in lab.itertuples(index=False)}
    assert got == pytest.approx({(r.participant_id, r.session_id): r.centiloid
                                 for r in amy.itertuples()}, abs=0.006)
    for tsv in openneuro.root.glob("sub-*/*_sessions.tsv"):
        assert "centiloid" not in pd.read_csv(tsv, sep="\t").columns


def test_layout_truth_round_trip(openneuro):
    again = load_truth(openneuro.root)
    assert again.parameters["layout"] == "openneuro"
    assert list(again.sessions["mri_session"]) == list(openneuro.sessions["mri_session"])
