from pathlib import Path

import pytest

from bids_amyloid.bids.layout import discover_sessions, read_filters, require_labels
from bids_amyloid.config import clean_label
from bids_amyloid.config import Config
from bids_amyloid.errors import (
    BidsValidationError,
    DataError,
    MissingInputError,
    NothingSelectedError,
    UsageError,
)


def _config(bids: Path, tmp_path: Path, **kw) -> Config:
    return Config(bids_dir=bids, output_dir=tmp_path / "out", analysis_level="participant",
                  skip_bids_validation=True, **kw)


def test_sessions_runs_tracers_and_borrowed_mri(tiny_bids, tmp_path):
    sessions = {s.key: s for s in discover_sessions(_config(tiny_bids, tmp_path, contrasts=["T1w", "FLAIR"]))}
    assert sorted(sessions) == ["sub-01_ses-M000", "sub-01_ses-M012", "sub-02_ses-M000"]
    s1 = sessions["sub-01_ses-M000"]
    assert set(s1.anat) == {"T1w", "FLAIR"} and [(p.tracer, p.label) for p in s1.pet] == [("PiB", "11CPIB")]
    borrowed = sessions["sub-01_ses-M012"]
    assert borrowed.mri_session == "M000" and borrowed.borrows_mri
    assert borrowed.anat["T1w"] == s1.anat["T1w"] and borrowed.pet[0].tracer == "florbetapir"
    assert (borrowed.mri_gap_days, borrowed.date_source) == (365.0, "month label")
    # two runs, both with run-: the finer spacing (run-2, 1.0 mm) wins
    assert sessions["sub-02_ses-M000"].anat["T1w"].name == "sub-02_ses-M000_run-2_T1w.nii.gz"


def test_labels_follow_strict_threshold_and_missing_is_unknown(tiny_bids, tmp_path):
    sessions = {s.key: s for s in discover_sessions(_config(tiny_bids, tmp_path))}
    assert sessions["sub-01_ses-M000"].label == 1 and sessions["sub-01_ses-M000"].centiloid == 35.0
    assert sessions["sub-02_ses-M000"].label == 0  # 20.6 is not > 20.6
    assert sessions["sub-01_ses-M012"].label is None  # n/a stays unknown, never negative


def test_participant_and_session_selection(tiny_bids, tmp_path):
    only = discover_sessions(_config(tiny_bids, tmp_path, participant_labels=["02"]))
    assert [s.key for s in only] == ["sub-02_ses-M000"]
    with pytest.raises(NothingSelectedError, match="'99'"):
        discover_sessions(_config(tiny_bids, tmp_path, participant_labels=["99"]))
    with pytest.raises(NothingSelectedError):
        discover_sessions(_config(tiny_bids, tmp_path, session_labels=["M999"]))


def test_filter_file_restricts_pet_tracer(tiny_bids, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text('{"pet": {"tracer": "11CPIB"}}')
    sessions = {s.key: s for s in discover_sessions(_config(tiny_bids, tmp_path, bids_filter_file=filters))}
    assert sessions["sub-01_ses-M000"].pet and "sub-01_ses-M012" not in sessions  # its only PET filtered out


@pytest.mark.parametrize("text, match", [("{not json", "not valid JSON"), ('{"T1x": {}}', "unknown keys"),
                                         ('["T1w"]', "must map")])
def test_bad_filter_files(tmp_path, text, match):
    path = tmp_path / "f.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=match):
        read_filters(path)


def test_not_bids_and_empty(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        discover_sessions(_config(tmp_path / "nope", tmp_path))
    (tmp_path / "plain").mkdir()
    with pytest.raises(BidsValidationError, match="dataset_description.json is missing"):
        discover_sessions(_config(tmp_path / "plain", tmp_path))
    (tmp_path / "plain" / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
    with pytest.raises(MissingInputError, match="no subjects"):
        discover_sessions(_config(tmp_path / "plain", tmp_path))


def test_quirk10_oasis_download_with_a_description_per_session_only(tmp_path):
    """The OASIS download script puts dataset_description.json in every session, none at the top."""
    root = tmp_path / "oasis"
    for ses in ("d0000", "d0423"):
        (root / "sub-OAS30001" / f"ses-{ses}").mkdir(parents=True)
        (root / "sub-OAS30001" / f"ses-{ses}" / "dataset_description.json").write_text('{"BIDSVersion": "1.0.1"}')
    with pytest.raises(BidsValidationError) as err:
        discover_sessions(_config(root, tmp_path))
    message = str(err.value)
    assert "2 session folder(s) have one" in message and "OASIS download script" in message
    assert "add one at the top" in message and "--skip-bids-validation" in message


def test_clean_label_strips_prefix_and_blocks_traversal():
    assert clean_label("sub-01", "sub-") == "01" and clean_label("01", "sub-") == "01"
    for bad in ("../01", "01/..", "sub-0 1", ""):
        with pytest.raises(UsageError):
            clean_label(bad, "sub-")


def test_require_labels(tiny_bids, tmp_path):
    config = _config(tiny_bids, tmp_path)
    labelled = require_labels(discover_sessions(config), config)
    assert len(labelled) == 2
    config.labels.centiloid_column = "suvr"
    with pytest.raises(MissingInputError, match="'suvr'"):
        require_labels(discover_sessions(config), config)


def test_non_numeric_centiloid_names_file(tiny_bids, tmp_path):
    tsv = tiny_bids / "sub-02" / "sub-02_sessions.tsv"
    tsv.write_text("session_id\tcentiloid\nses-M000\thigh\n")
    with pytest.raises(DataError, match="sub-02_sessions.tsv.*'high'"):
        discover_sessions(_config(tiny_bids, tmp_path))
