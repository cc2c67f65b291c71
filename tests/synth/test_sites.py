"""Multi-site cohorts: balanced sites in participants.tsv and the truth, one scanner profile per site
that changes every MRI contrast measurably (contrast, noise, sidecars), nothing when it is 0."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_amyloid.errors import UsageError
from bids_amyloid.synth import generate_cohort, sites, truth

from helpers import synth_measure as sm

MRI = ("T1w", "T2w", "FLAIR", "T2starw")


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _profiles(c) -> dict:
    return json.loads(c.truth_json.read_text())["sites"]


def _site_of(c) -> pd.Series:
    return c.sessions.groupby("participant_id")["site"].first()


def _pairs(a, b, suffix: str):
    """The same image of two cohorts of one seed (same subjects, sessions and draws)."""
    ia, ib = (c.images[c.images["suffix"] == suffix].reset_index(drop=True) for c in (a, b))
    assert list(ia["path"]) == list(ib["path"]) and len(ia)
    return zip(ia.itertuples(), ib.itertuples())


def _corners(x: np.ndarray) -> np.ndarray:
    """The 8 corner blocks of the field of view (a sixth of each axis): air, pure noise."""
    n = [max(s // 6, 1) for s in x.shape]
    blocks = [x[sl0, sl1, sl2] for sl0 in (slice(0, n[0]), slice(-n[0], None))
              for sl1 in (slice(0, n[1]), slice(-n[1], None)) for sl2 in (slice(0, n[2]), slice(-n[2], None))]
    return np.concatenate([b.ravel() for b in blocks])


def test_sites_are_balanced_and_recorded(sites_cohort):
    c = sites_cohort
    parts = pd.read_csv(c.root / "participants.tsv", sep="\t")
    assert list(parts.columns) == ["participant_id", "age", "sex", "site"]
    assert parts["site"].value_counts().to_dict() == {"S1": 2, "S2": 2, "S3": 2}
    assert parts.set_index("participant_id")["site"].equals(_site_of(c).rename_axis("participant_id"))
    assert c.sessions.groupby("participant_id")["site"].nunique().max() == 1  # one site per subject
    levels = json.loads((c.root / "participants.json").read_text())["site"]["Levels"]
    meta = json.loads(c.truth_json.read_text())
    assert set(levels) == set(meta["sites"]) == {"S1", "S2", "S3"}
    assert meta["parameters"] | {"sites": 3, "site_effect": 2.0, "site_prevalence_shift": 0.0} == meta["parameters"]
    assert "site" in meta["truth_columns"]


def test_site_effect_zero_changes_only_the_tables(cohort, sites_null, sites_cohort):
    """sites without effect: the very same images and sidecars as the default cohort; the site
    assignment does not depend on the effect's strength."""
    a, b = cohort.root, sites_null.root
    assert _files(a) == _files(b)
    tables = {"participants.tsv", "participants.json", "sourcedata/synth/truth.tsv",
              "sourcedata/synth/truth.json"}
    assert [str(r) for r in _files(a) if (a / r).read_bytes() != (b / r).read_bytes()] == sorted(tables)
    assert cohort.sessions.drop(columns="site").equals(sites_null.sessions.drop(columns="site"))
    assert set(cohort.sessions["site"]) == {"S1"}
    assert "site" not in json.loads((a / "participants.json").read_text())
    assert _site_of(sites_null).equals(_site_of(sites_cohort))
    for name, prof in _profiles(sites_null).items():  # identical scanners apart from the name
        assert prof["snr_factor"] == 1.0 and prof["bias_shift"] == 0.0
        assert prof["scanner"] == _profiles(cohort)["S1"]["scanner"]


def test_pet_and_latents_do_not_change_with_the_site_effect(sites_null, sites_cohort):
    for ra, rb in _pairs(sites_null, sites_cohort, "pet"):
        assert (sites_null.root / ra.path).read_bytes() == (sites_cohort.root / rb.path).read_bytes()
    assert sites_null.sessions.equals(sites_cohort.sessions)


@pytest.mark.parametrize("suffix", MRI)
def test_site_gains_change_the_gm_wm_contrast(sites_null, sites_cohort, suffix):
    """GM/WM intensity ratio (template tissue maps) against the same image without site effect: it
    moves with the site's recorded gain ratio in every contrast; in T1w (dark CSF: little partial
    volume of the CSF gain in GM) each site's mean change is that ratio."""
    src = sm.source()
    gm, wm = src.classes[0] > 0.9, src.classes[1] > 0.95
    site, prof = _site_of(sites_cohort), _profiles(sites_cohort)
    rows = []
    for ra, rb in _pairs(sites_null, sites_cohort, suffix):
        x, y = (sm.to_template(c.root / r.path, r.template_to_scanner, src)
                for c, r in ((sites_null, ra), (sites_cohort, rb)))
        g = prof[site[rb.participant_id]]["tissue_gain"][suffix]
        rows.append({"site": site[rb.participant_id], "expected": g["GM"] / g["WM"],
                     "measured": float((y[gm].mean() / y[wm].mean()) / (x[gm].mean() / x[wm].mean()))})
    t = pd.DataFrame(rows)
    assert t["site"].nunique() == 3 and t["expected"].std() > 0.05
    assert np.corrcoef(t["expected"], t["measured"])[0, 1] > 0.9, t
    if suffix == "T1w":
        means = t.groupby("site")[["expected", "measured"]].mean()
        assert np.allclose(means["measured"], means["expected"], atol=0.05), means


@pytest.mark.parametrize("suffix", MRI)
def test_site_snr_changes_the_noise_of_every_contrast(sites_null, sites_cohort, suffix):
    """Air in the corners of the field of view is Rician noise only: with the same draws, its level
    scales by 1 / snr_factor of the subject's site."""
    site, prof = _site_of(sites_cohort), _profiles(sites_cohort)
    for ra, rb in _pairs(sites_null, sites_cohort, suffix):
        x, y = (_corners(np.asanyarray(nib.load(c.root / r.path).dataobj).astype(float))
                for c, r in ((sites_null, ra), (sites_cohort, rb)))
        keep = x > 4  # int16 rounding
        ratio = float(np.median(y[keep] / x[keep]))
        assert ratio == pytest.approx(1.0 / prof[site[rb.participant_id]]["snr_factor"], rel=0.03), rb.path
    assert len({p["snr_factor"] for p in prof.values()}) == 3


def test_sidecars_name_each_sites_scanner(sites_cohort):
    c, site, prof = sites_cohort, _site_of(sites_cohort), _profiles(sites_cohort)
    seen: dict[str, set[tuple]] = {}
    for sub, name in site.items():
        for side in (c.root / sub).glob("ses-*/anat/*.json"):
            m = json.loads(side.read_text())
            seen.setdefault(name, set()).add((m["Manufacturer"], m["ManufacturersModelName"],
                                              m["MagneticFieldStrength"], m["DeviceSerialNumber"]))
    for name, found in seen.items():
        s = prof[name]["scanner"]
        assert found == {(s["Manufacturer"], s["ManufacturersModelName"], s["MagneticFieldStrength"],
                          s["DeviceSerialNumber"])}
    assert len({prof[n]["scanner"]["Manufacturer"] for n in seen}) == 3  # three vendors


def test_prevalence_shift_moves_the_latent_per_site(cohort, tmp_path):
    """site_prevalence_shift adds s * linspace(-1, 1, sites) to u: the load of each subject moves
    by its site's shift, nothing else of the subject changes."""
    c = generate_cohort(tmp_path / "p", n_subjects=2, seed=0, resolution=2.0, contrasts=("T1w",),
                        sites=2, site_prevalence_shift=1.0)
    prof = _profiles(c)
    assert sorted(p["latent_shift"] for p in prof.values()) == [-1.0, 1.0]
    u = lambda load: np.log(load / (1 - load)) / truth.SLOPE  # noqa: E731  (u up to SHIFT)
    base = cohort.sessions.set_index(["participant_id", "session_id"])
    for row in c.sessions.itertuples():
        before = base.loc[(row.participant_id, row.session_id)]
        assert u(row.latent_load) - u(before.latent_load) == pytest.approx(prof[row.site]["latent_shift"], abs=0.01)
        assert row.age == before.age and row.head_scale == before.head_scale


def test_assignment_is_balanced_and_seeded():
    a = sites.assign_sites(0, 10, 3)
    assert sorted(np.bincount(a)) == [3, 3, 4]
    assert a == sites.assign_sites(0, 10, 3) and a != sites.assign_sites(1, 10, 3)
    assert sites.assign_sites(5, 4, 1) == [0, 0, 0, 0]
    assert sites.site_names(12)[:2] == ["S01", "S02"]


@pytest.mark.parametrize("kw, message", [
    ({"sites": 0}, "--sites"), ({"sites": 3, "n_subjects": 2}, "--sites"),
    ({"site_effect": -0.5}, "--site-effect"), ({"site_effect": 50.0}, "--site-effect"),
    ({"site_prevalence_shift": 1.0}, "needs --sites 2"),
    ({"sites": 2, "site_prevalence_shift": -1.0}, "--site-prevalence-shift")])
def test_invalid_site_arguments_are_refused(tmp_path, kw, message):
    with pytest.raises(UsageError, match=message):
        generate_cohort(tmp_path / "x", **{"n_subjects": 6, "resolution": 2.0, **kw})
    assert not (tmp_path / "x").exists()  # refused before anything is written
