import pytest

from bids_amyloid.bids.labels import read_labels
from bids_amyloid.config import LabelConfig


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_participants_tsv_subject_wide(tmp_path):
    _write(tmp_path / "participants.tsv", "participant_id\tCENTILOID\nsub-01\t50\nsub-02\t-3\nsub-03\tn/a\n")
    table = read_labels(tmp_path, LabelConfig())
    assert table.lookup("01", "M000").label == 1 and table.lookup("02", None).label == 0
    assert table.lookup("03", None) is None


def test_phenotype_with_sessions_and_status_column(tmp_path):
    _write(tmp_path / "phenotype" / "amyloid.tsv",
           "participant_id\tsession_id\tamyloid_status\nsub-01\tses-A\tpositive\nsub-01\tses-B\tneg\n")
    table = read_labels(tmp_path, LabelConfig(label_column="amyloid_status"))
    assert table.lookup("01", "A").label == 1 and table.lookup("01", "B").label == 0
    assert table.lookup("01", "A").centiloid is None


def test_sessions_tsv_overrides_participants(tmp_path):
    _write(tmp_path / "participants.tsv", "participant_id\tcentiloid\nsub-01\t5\n")
    _write(tmp_path / "sub-01" / "sub-01_sessions.tsv", "session_id\tcentiloid\nses-2\t40\n")
    table = read_labels(tmp_path, LabelConfig())
    assert table.lookup("01", "2").label == 1  # session value
    assert table.lookup("01", "1").label == 0  # falls back to the subject-wide value


def test_custom_threshold_and_column(tmp_path):
    _write(tmp_path / "participants.tsv", "participant_id\tcl_pib\nsub-01\t25\n")
    table = read_labels(tmp_path, LabelConfig(centiloid_column="cl_pib", centiloid_threshold=30))
    assert table.lookup("01", None).label == 0 and table.columns_found == {"cl_pib"}


def test_quirk9_oasis3_centiloid_csv_outside_the_dataset(tmp_path, caplog):
    """OASIS-3: labels keyed by the PET session id in a CSV next to the dataset; empty and n/a cells."""
    import logging

    from bids_amyloid.bids.labels import report_unmatched

    csv = tmp_path / "OASIS3_amyloid_centiloid.csv"
    _write(csv, "oasis_session_id,subject_id,tracer,Centiloid_fBP_TOT_CORTMEAN,Centiloid_fSUVR_rsf_TOT_CORTMEAN\n"
                "OAS30001_PIB_d0423,OAS30001,PIB,40.1,45.2\n"
                "OAS30001_AV45_d2430,OAS30001,AV45,,12.0\n"
                "OAS30002_AV45_d0100,OAS30002,AV45,,n/a\n"
                "OAS39999_PIB_d0001,OAS39999,PIB,1,2\n")
    config = LabelConfig(centiloid_column="Centiloid_fSUVR_rsf_TOT_CORTMEAN", labels_file=csv)
    table = read_labels(tmp_path / "bids", config)
    assert table.lookup("OAS30001", "d0423").label == 1 and table.lookup("OAS30001", "d0423").centiloid == 45.2
    assert table.lookup("OAS30001", "d2430").label == 0 and table.lookup("OAS30002", "d0100") is None
    caplog.set_level(logging.INFO)
    report_unmatched(table, {("OAS30001", "d0423"), ("OAS30001", "d2430"), ("OAS30002", "d0100")}, csv)
    assert "1 of 4 row(s) match no session of the dataset, e.g. sub-OAS39999 ses-d0001" in caplog.text


def test_quirk9_external_tsv_with_or_without_prefixes_wins(tmp_path):
    _write(tmp_path / "bids" / "participants.tsv", "participant_id\tcentiloid\nsub-1003\t90\n")
    labels = tmp_path / "labels.txt"  # no extension: the separator is detected
    _write(labels, "participant_id\tsession_id\tcentiloid\n1003\twave1\t5\nsub-1004\tses-wave2\t30\n")
    table = read_labels(tmp_path / "bids", LabelConfig(labels_file=labels))
    assert table.lookup("1003", "wave1").label == 0  # the external table wins
    assert table.lookup("1003", "wave2").label == 1  # participants.tsv still answers elsewhere
    assert table.lookup("1004", "wave2").centiloid == 30


def test_external_table_problems_are_clear(tmp_path):
    import pytest

    from bids_amyloid.errors import DataError, MissingInputError

    with pytest.raises(MissingInputError, match="file not found"):
        read_labels(tmp_path, LabelConfig(labels_file=tmp_path / "none.csv"))
    _write(tmp_path / "a.csv", "subject_id,cl\nOAS1,3\n")
    with pytest.raises(MissingInputError, match="no column 'centiloid'"):
        read_labels(tmp_path, LabelConfig(labels_file=tmp_path / "a.csv"))
    _write(tmp_path / "b.csv", "name,centiloid\nOAS1,3\n")
    with pytest.raises(DataError, match="no key column"):
        read_labels(tmp_path, LabelConfig(labels_file=tmp_path / "b.csv"))
    _write(tmp_path / "c.csv", "subject_id,centiloid\nOAS1,high\n")
    with pytest.raises(DataError, match="'high'"):
        read_labels(tmp_path, LabelConfig(labels_file=tmp_path / "c.csv"))


def test_duplicate_keys_with_different_values_are_unknown(tmp_path, caplog):
    _write(tmp_path / "l.tsv", "participant_id\tsession_id\tcentiloid\n01\tA\t5\n01\tA\t50\n02\tA\t7\n02\tA\t7\n")
    table = read_labels(tmp_path, LabelConfig(labels_file=tmp_path / "l.tsv"))
    assert table.lookup("01", "A").label is None and table.lookup("02", "A").label == 0
    assert "sub-01 ses-A has two different values" in caplog.text


def test_subgroup_columns_from_every_table(tmp_path):
    from bids_amyloid.bids.labels import read_columns

    _write(tmp_path / "participants.tsv", "participant_id\tSite\tsex\nsub-01\tA\tF\nsub-02\tB\tn/a\n")
    _write(tmp_path / "sub-01" / "sub-01_sessions.tsv", "session_id\tsite\nses-2\tC\n")
    external = tmp_path.parent / f"{tmp_path.name}-dx.csv"
    _write(external, "subject,visit,diagnosis\n02,ses-1,MCI\n")
    table = read_columns(tmp_path, ["site", "sex", "diagnosis"], external)
    assert table.lookup("site", "01", "1") == "A" and table.lookup("site", "01", "2") == "C"  # the session wins
    assert table.lookup("sex", "02", "1") is None  # n/a is missing
    assert table.lookup("diagnosis", "02", "1") == "MCI" and table.lookup("diagnosis", "01", "1") is None


def test_unknown_subgroup_column_names_the_tables(tmp_path):
    from bids_amyloid.bids.labels import read_columns
    from bids_amyloid.errors import UsageError

    _write(tmp_path / "participants.tsv", "participant_id\tsite\nsub-01\tA\n")
    with pytest.raises(UsageError, match=r"no column \['scanner'\].*participants.tsv"):
        read_columns(tmp_path, ["site", "scanner"])
