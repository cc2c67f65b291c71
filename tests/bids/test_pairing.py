"""MRI-PET pairing across sessions (real-data quirk 1: MRI and PET in different sessions)."""
from __future__ import annotations

from bids_amyloid.bids.pairing import SESSION_ORDER, nearest_mri_session, session_dates


def _dates(tmp_path, subject, sessions, **files):
    for rel, text in files.items():
        path = tmp_path / rel.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return session_dates(tmp_path, subject, sessions)


def test_quirk1_oasis_day_labels(tmp_path):
    dates = _dates(tmp_path, "OAS30001", ["d0129", "d0423", "d0757"])
    assert nearest_mri_session("d0423", ["d0129", "d0757"], dates, 365) == ("d0129", 294.0, "day label", None)


def test_quirk1_clinica_month_bins(tmp_path):
    dates = _dates(tmp_path, "01", ["M000", "M006", "M012"])
    assert nearest_mri_session("M012", ["M000"], dates, 365) == ("M000", 365.0, "month label", None)
    assert nearest_mri_session("M006", ["M000", "M012"], dates, 365)[:2] == ("M012", 182.0)


def test_a_tie_goes_to_the_earlier_mri(tmp_path):
    dates = _dates(tmp_path, "OAS30003", ["d0000", "d0100", "d0200"])
    assert nearest_mri_session("d0100", ["d0200", "d0000"], dates, 365)[:2] == ("d0000", 100.0)


def test_too_far_is_unpaired_and_names_the_nearest(tmp_path):
    dates = _dates(tmp_path, "OAS30002", ["d0000", "d1400"])
    assert nearest_mri_session("d1400", ["d0000"], dates, 365) == (None, 1400.0, "day label", "d0000")


def test_acq_time_in_sessions_tsv_wins_over_labels(tmp_path):
    dates = _dates(tmp_path, "01", ["M000", "M024"], **{
        "sub-01__sub-01_sessions.tsv": "session_id\tacq_time\nses-M000\t2010-01-01T09:00:00\n"
                                       "ses-M024\t2010-03-02T10:00:00\n"})
    mri, gap, source, _ = nearest_mri_session("M024", ["M000"], dates, 365)
    assert mri == "M000" and round(gap) == 60 and source == "acq_time (sessions.tsv)"


def test_acq_time_from_scans_tsv(tmp_path):
    dates = _dates(tmp_path, "01", ["wave1", "wave2"], **{
        "sub-01__ses-wave1__sub-01_ses-wave1_scans.tsv": "filename\tacq_time\nanat/a.nii.gz\t2015-05-01T08:00:00\n",
        "sub-01__ses-wave2__sub-01_ses-wave2_scans.tsv": "filename\tacq_time\npet/p.nii.gz\tn/a\n"
                                                         "pet/q.nii.gz\t2015-06-10T08:00:00\n"})
    assert nearest_mri_session("wave2", ["wave1"], dates, 365)[1:3] == (40.0, "acq_time (scans.tsv)")


def test_no_dates_falls_back_to_session_order(tmp_path):
    dates = _dates(tmp_path, "1003", ["wave1", "wave2", "wave3"])
    assert nearest_mri_session("wave3", ["wave1", "wave2"], dates, 365) == ("wave2", None, SESSION_ORDER, None)


def test_partial_dates_use_the_next_source_that_dates_both(tmp_path):
    dates = _dates(tmp_path, "01", ["M000", "M006"], **{
        "sub-01__sub-01_sessions.tsv": "session_id\tacq_time\nses-M000\t2010-01-01\nses-M006\tn/a\n"})
    assert nearest_mri_session("M006", ["M000"], dates, 365)[2] == "month label"
