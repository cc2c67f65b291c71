import json
from pathlib import Path

import pytest

from bids_amyloid.config import Config, ModelConfig, config_from_dict, field_docs, save_config
from bids_amyloid.errors import UsageError


def test_round_trip_keeps_types(tmp_path):
    config = Config(bids_dir=Path("/data"), output_dir=Path("/out"), analysis_level="group", seed=7,
                    participant_labels=["01"], bids_filter_file=Path("/f.json"))
    config.preprocess.slice_band = (0.3, 0.7)
    config.train.negatives = "hard"
    again = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert isinstance(again.bids_filter_file, Path) and again.preprocess.slice_band == (0.3, 0.7)


def test_saved_with_version_and_seed(tmp_path):
    config = Config(bids_dir=Path("/data"), output_dir=Path("/out"), analysis_level="participant", seed=99)
    save_config(config, tmp_path / "c.json")
    payload = json.loads((tmp_path / "c.json").read_text())
    assert payload["bids_amyloid_version"] and payload["config"]["seed"] == 99


@pytest.mark.parametrize("change, code", [
    (dict(analysis_level="session"), 17), (dict(contrasts=["DWI"]), 64), (dict(nprocs=0), 64),
    (dict(mem_gb=-1), 64), (dict(device="tpu"), 64),
])
def test_validate_rejects(change, code):
    config = Config(bids_dir=Path("/d"), output_dir=Path("/o"), analysis_level="participant")
    for key, value in change.items():
        setattr(config, key, value)
    with pytest.raises(UsageError) as info:
        config.validate()
    assert info.value.exit_code == code


def test_every_field_documented():
    for cls in (Config, ModelConfig):
        docs = field_docs(cls)
        undocumented = [f for f in cls.__dataclass_fields__ if f not in docs and f not in ("labels", "preprocess", "model", "train", "infer")]
        assert not undocumented, undocumented
