import json
import shutil

import pytest
import torch

from bids_amyloid.errors import DataError, MissingInputError
from bids_amyloid.models.bundle import load_bundle, load_students, load_teachers
from bids_amyloid.models.bundle_write import save_bundle
from bids_amyloid.models.networks import build_network


def _nets(randomize, config, weights=None, n=2, layout="paper"):
    nets = []
    for i in range(n):
        net = build_network(config.model, weights, student_layout=layout, seed=i)
        randomize(net, seed=10 + i)
        nets.append(net.eval())
    return nets


def _save(path, config, students, teachers=None, **kw):
    return save_bundle(path, config=config, students=[s.state_dict() for s in students],
                       teachers=None if teachers is None else [t.state_dict() for t in teachers],
                       thresholds=[0.3 + 0.1 * i for i in range(len(students))],
                       splits=[{"fold": 0, "test": ["sub-01"]}], metrics={"auc": 0.71},
                       training_summary={"sessions": 12, "subjects": 9}, **kw)


def test_round_trip_identical_outputs(tmp_path, run_config, randomize):
    students, teachers = _nets(randomize, run_config), _nets(randomize, run_config, n=2)
    out = tmp_path / "group"
    bundle = _save(out / "models", run_config, students, teachers)
    assert bundle.testing_only and bundle.backbone_kind == "tiny" and bundle.has_teachers
    assert "TESTING ONLY" in (bundle.path / "model_card.md").read_text()
    loaded = load_bundle(out)  # the group output folder works too
    assert loaded.model_id == bundle.model_id and loaded.thresholds == pytest.approx([0.3, 0.4])
    fold_file = loaded.path / loaded.folds[0]["student"]
    assert fold_file.stat().st_size < 2_000_000  # trainable tensors only
    x = torch.randn(1, 3, 3, 224, 224)
    pet = torch.randn(1, 3, 3, 224, 224)
    with torch.no_grad():
        for orig, new in zip(students, load_students(loaded)):
            assert torch.equal(orig.student(x).logit, new.student(x).logit)
        for orig, new in zip(teachers, load_teachers(loaded)):
            assert torch.equal(orig.teacher(x, pet).logit, new.teacher(x, pet).logit)
    assert not list(out.glob(".tmp-*"))
    # overwrite atomically
    again = _save(out / "models", run_config, students)
    assert again.model_id != bundle.model_id and not again.has_teachers
    assert not list(out.glob(".tmp-*"))
    with pytest.raises(DataError, match="teacher"):
        load_teachers(again)


def test_tampered_missing_and_incompatible_bundles(tmp_path, run_config, randomize):
    good = _save(tmp_path / "good", run_config, _nets(randomize, run_config, n=1))
    cases = {
        "tamper": lambda p: (p / "fold-00_student.safetensors").write_bytes(
            (p / "fold-00_student.safetensors").read_bytes()[:-10] + b"0123456789"),
        "truncate": lambda p: (p / "backbone.safetensors").write_bytes(b"xx"),
        "missing": lambda p: (p / "fold-00_student.safetensors").unlink(),
    }
    names = {"tamper": "fold-00_student", "truncate": "backbone.safetensors", "missing": "fold-00_student"}
    for case, damage in cases.items():
        path = tmp_path / case
        shutil.copytree(good.path, path)
        damage(path)
        with pytest.raises(DataError, match=names[case]) as info:
            load_bundle(path)
        assert info.value.exit_code == 65
    path = tmp_path / "future"
    shutil.copytree(good.path, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = "2.0"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="incompatible"):
        load_bundle(path)
    with pytest.raises(MissingInputError):
        load_bundle(tmp_path / "nothing-here")


def test_external_backbone_referenced_by_digest(tmp_path, run_config, tiny_weights, randomize):
    students = _nets(randomize, run_config, tiny_weights, layout="small")
    run_config.model.student, run_config.model.backbone_weights = "small", tiny_weights
    bundle = _save(tmp_path / "b", run_config, students, embed_backbone=False)
    assert bundle.backbone["file"] is None and not (bundle.path / "backbone.safetensors").exists()
    source = json.loads((tiny_weights / "config.json").read_text())["source"]
    assert bundle.backbone["source"] == source and source["sha256"]  # where the backbone came from
    with pytest.raises(MissingInputError, match="does not embed"):
        load_students(bundle)  # backbone not resolvable
    x = torch.randn(1, 2, 3, 224, 224)
    new = load_students(bundle, weights_dir=tiny_weights)
    with torch.no_grad():
        assert torch.equal(students[1].student(x).logit, new[1].student(x).logit)
    # other weights than the bundle was trained with: refused
    from bids_amyloid.models.weights import convert_checkpoint, write_random_checkpoint

    other = convert_checkpoint(write_random_checkpoint(tmp_path / "o.bin", "tiny", seed=99), tmp_path / "o", "tiny")
    with pytest.raises(DataError, match="not the ones"):
        load_students(bundle, weights_dir=other)


def test_bundles_made_before_the_cls_setting_keep_post_norm(run_config):
    from bids_amyloid.models.bundle import bundle_config

    data = run_config.to_dict()
    assert bundle_config(data).model.cls_token == "pre-norm"  # recorded by new bundles
    del data["model"]["cls_token"]  # a config.json written before the setting existed
    assert bundle_config(data).model.cls_token == "post-norm"
