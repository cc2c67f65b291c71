"""The real BiomedCLIP checkpoint fits, proven offline: open_clip builds the vision tower from the
published ``open_clip_config.json`` (its own code path, random weights), we save it as an open_clip
checkpoint, convert it with ``convert_checkpoint`` and load it into the project's tower: every
``visual.*`` key and shape is used, nothing dropped or left uninitialised, and the CLS features agree
with open_clip's ``visual.trunk``."""
from __future__ import annotations

import pytest
import torch

from bids_amyloid.models.tensorfiles import load_safetensors
from bids_amyloid.models.weights import WEIGHTS_FILE, convert_checkpoint, load_slice_encoder

# model_cfg of microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224/open_clip_config.json
# (the vision part; the text tower is PubMedBERT, which the app never builds)
OPEN_CLIP_MODEL_CFG = {
    "embed_dim": 512,
    "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False, "timm_pool": "",
                   "timm_proj": "linear", "image_size": 224},
}


@pytest.fixture(scope="module")
def open_clip_visual():
    """open_clip's own construction of the BiomedCLIP vision tower, random weights (seeded)."""
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    torch.manual_seed(0)
    cfg = OPEN_CLIP_MODEL_CFG
    return _build_vision_tower(cfg["embed_dim"], CLIPVisionCfg(**cfg["vision_cfg"])).eval()


def test_biomedclip_checkpoint_converts_and_loads_without_loss(open_clip_visual, tmp_path):
    state = {f"visual.{k}": v for k, v in open_clip_visual.state_dict().items()}
    state["logit_scale"] = torch.tensor(4.6)  # a CLIP checkpoint's non-visual tensor: dropped
    checkpoint = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(state, checkpoint)
    folder = convert_checkpoint(checkpoint, tmp_path / "biomedclip", "biomedclip")

    stored = load_safetensors(folder / WEIGHTS_FILE)
    visual = {k: v for k, v in state.items() if k.startswith("visual.")}
    assert stored.keys() == visual.keys()
    assert all(stored[k].shape == v.shape and torch.equal(stored[k], v.float()) for k, v in visual.items())

    encoder = load_slice_encoder("biomedclip", folder)
    loaded = {f"visual.{k}": v for k, v in encoder.visual.state_dict().items()}
    assert loaded.keys() == visual.keys(), "a key of the tower was left uninitialised"
    assert not any(p.is_meta for p in encoder.parameters())

    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = open_clip_visual.trunk.forward_features(x)[:, 0]
        assert torch.allclose(encoder(x), expected, atol=1e-5, rtol=1e-4)
