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
