"""The slice encoder's architecture: token shapes, the frozen-prefix split, ViT-B names and sizes."""
import torch

from bids_amyloid.models.backbone import SliceEncoder
from bids_amyloid.models.lora import add_lora
from bids_amyloid.models.weights import load_slice_encoder


def test_tiny_encoder_shapes_and_prefix_split(tiny_weights):
    enc = load_slice_encoder("tiny", tiny_weights)
    add_lora(enc, 8, 8, 0.0, 3)
    x = torch.randn(3, 3, 224, 224)
    out = enc(x)
    assert enc.width == 64 and out.shape == (3, 64)
    tokens = enc.frozen_prefix(x)
    assert tokens.shape == (3, 197, 64) and not tokens.requires_grad
    torch.testing.assert_close(enc.forward_from_prefix(tokens), out)


def test_vit_b_structure_and_lora_param_count():
    with torch.device("meta"):  # structure only (a real random init takes ~2.5 s)
        enc = SliceEncoder("biomedclip")
    keys = enc.state_dict()
    # the BiomedCLIP checkpoint's visual.* names and shapes
    assert keys["visual.trunk.cls_token"].shape == (1, 1, 768)
    assert keys["visual.trunk.pos_embed"].shape == (1, 197, 768)
    assert keys["visual.head.proj.weight"].shape == (512, 768)
    assert "visual.trunk.blocks.11.attn.qkv.weight" in keys and "visual.trunk.head.weight" not in keys
    assert enc.width == 768 and enc.n_blocks == 12
    n = add_lora(enc, 32, 32.0, 0.1, None)
    assert n == 1_179_648 and enc.frozen_blocks == 6
    assert sum(p.numel() for p in enc.parameters() if p.requires_grad) == n
