"""Weights folders: conversion, checksums, safe checkpoint reading, resolution order, fetching."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file

from bids_amyloid.errors import DataError, MissingInputError
from bids_amyloid.models import weights
from bids_amyloid.models.backbone import BACKBONES
from bids_amyloid.models.tensorfiles import verify_manifest
from bids_amyloid.models.weights import (
    convert_checkpoint, load_slice_encoder, resolve_weights_dir, write_random_checkpoint,
)


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_conversion_round_trip_drops_text(tmp_path, suffix):
    ckpt = write_random_checkpoint(tmp_path / f"ckpt{suffix}", "tiny", seed=3)
    dest = convert_checkpoint(ckpt, tmp_path / "w", "tiny")
    stored = load_file(str(dest / "vision.safetensors"))
    assert stored and all(k.startswith("visual.") for k in stored)
    assert "visual.head.proj.weight" in stored  # the unused 512-d projection is kept
    config = json.loads((dest / "config.json").read_text())
    assert config["kind"] == "tiny" and config["dropped_keys"] == 3 and config["testing_only"]
    verify_manifest(dest)
    enc = load_slice_encoder("tiny", dest)
    if suffix == ".bin":
        original = torch.load(ckpt, weights_only=True)
    else:
        original = load_file(str(ckpt))
    for key, value in enc.state_dict().items():
        assert torch.equal(value, original[key])
    assert enc.weights_digest == config["tensor_digest"]


def test_tampered_and_truncated_weights_rejected(tmp_path, tiny_weights):
    import shutil

    for mode in ("tamper", "truncate"):
        dest = tmp_path / mode
        shutil.copytree(tiny_weights, dest)
        path = dest / "vision.safetensors"
        data = bytearray(path.read_bytes())
        if mode == "tamper":
            data[len(data) // 2] ^= 0xFF
        else:
            data = data[: len(data) // 2]
        path.write_bytes(bytes(data))
        with pytest.raises(DataError, match="vision.safetensors") as info:
            load_slice_encoder("tiny", dest)
        assert info.value.exit_code == 65
    (dest / "manifest.json").unlink()
    with pytest.raises(MissingInputError):  # no manifest: not a (complete) weights folder
        load_slice_encoder("tiny", dest)


def test_unsafe_pickle_checkpoint_refused(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"visual.x": torch.zeros(1), "obj": os.stat_result((0,) * 10)}, path)
    with pytest.raises(DataError, match="evil.bin"):
        convert_checkpoint(path, tmp_path / "w", "tiny")


def test_checkpoint_of_wrong_architecture_refused(tmp_path, tiny_weights):
    ckpt = write_random_checkpoint(tmp_path / "c.bin", "tiny")
    with pytest.raises(DataError, match="biomedclip"):
        convert_checkpoint(ckpt, tmp_path / "w", "biomedclip")
    with pytest.raises(DataError, match="not 'biomedclip'"):
        load_slice_encoder("biomedclip", tiny_weights)


def test_missing_weights_message_says_how_to_fetch(tmp_path):
    with pytest.raises(MissingInputError, match="bids_amyloid fetch-weights") as info:
        resolve_weights_dir("biomedclip", None)
    assert info.value.exit_code == 66
    with pytest.raises(MissingInputError, match="bids_amyloid fetch-weights"):
        resolve_weights_dir("biomedclip", tmp_path / "nowhere")
    with pytest.raises(MissingInputError, match="bids_amyloid fetch-weights"):
        load_slice_encoder("biomedclip", None)


def test_weights_resolution_order(monkeypatch, tmp_path, tiny_weights):
    # $BIDS_AMYLOID_WEIGHTS may name the folder itself or its parent holding <kind>/
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tiny_weights.parent))
    assert resolve_weights_dir("tiny", None) == tiny_weights
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tiny_weights))
    assert resolve_weights_dir("tiny", None) == tiny_weights
    assert resolve_weights_dir("tiny", tiny_weights.parent) == tiny_weights
    monkeypatch.delenv(weights.WEIGHTS_ENV)
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS_ROOT", tiny_weights.parent)
    assert resolve_weights_dir("tiny", None) == tiny_weights


def test_tiny_without_weights_is_deterministic():
    a, b = load_slice_encoder("tiny", None), load_slice_encoder("tiny", None)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert a.weights_digest is None


def test_fetch_weights_flow_without_network(monkeypatch, tmp_path):
    """fetch_weights downloads the two files of the BiomedCLIP repo (the config from the checkpoint's
    commit), refuses a checkpoint whose sha256 is not the pinned one unless told its hash, checks the
    vision config, converts with repo and commit recorded, and removes the download (the hub itself
    is never contacted in tests)."""
    import huggingface_hub

    from bids_amyloid.bids.io import sha256_file

    calls, commit = [], "0123abcd" * 5

    def fake_download(repo_id, filename, cache_dir=None, revision=None, **kw):
        calls.append((repo_id, filename, revision))
        path = tmp_path / "hub" / "snapshots" / commit / filename  # the hub cache layout
        path.parent.mkdir(parents=True, exist_ok=True)
        if filename.endswith(".bin"):
            if not path.exists():  # the same file on every download
                write_random_checkpoint(path, "tiny")
        else:
            path.write_text(json.dumps({"model_cfg": {"embed_dim": 512, "vision_cfg": vision_cfg}}))
        return str(path)

    converted = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(weights, "convert_checkpoint",
                        lambda src, dest, kind, source=None: converted.append((kind, source)) or dest)
    vision_cfg = dict(BACKBONES["biomedclip"]["vision_cfg"])
    dest = tmp_path / "w" / "biomedclip"
    with pytest.raises(DataError, match=f"expected {weights.HF_CHECKPOINT_SHA256}") as refused:
        weights.fetch_weights(dest)  # the fake checkpoint is not the pinned file
    actual = sha256_file(tmp_path / "hub" / "snapshots" / commit / weights.HF_CHECKPOINT)
    assert actual in str(refused.value) and "--checkpoint-sha256" in str(refused.value) and not converted
    calls.clear()
    assert weights.fetch_weights(dest, checkpoint_sha256=actual) == dest
    assert calls == [(weights.HF_REPO, weights.HF_CHECKPOINT, None), (weights.HF_REPO, weights.HF_CONFIG, commit)]
    assert converted == [("biomedclip", {"repo": weights.HF_REPO, "revision": commit})]
    assert not list((tmp_path / "w").glob(".tmp-*"))
    vision_cfg["timm_model_name"] = "vit_large_patch14_224"
    with pytest.raises(DataError, match="timm_model_name"):
        weights.fetch_weights(dest, checkpoint_sha256=actual)
