"""The slice encoder: BiomedCLIP's vision tower (a ViT-B/16), built offline through open_clip.

BiomedCLIP (``microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``) is an open_clip
checkpoint whose vision tower is open_clip's :class:`open_clip.timm_model.TimmModel` around timm's
``vit_base_patch16_224`` (``timm_pool ""``, ``timm_proj "linear"``, ``embed_dim`` 512, 224 px). We
build exactly that module (the text tower is never built), so the checkpoint's ``visual.*`` keys
load unchanged into :attr:`SliceEncoder.visual`. The slice embedding is the 768-d CLS token of the
last block, before the final LayerNorm as the authors' scripts take it (``ModelConfig.cls_token``
'pre-norm'), or after it, as ``trunk.forward_features`` gives it ('post-norm'; the choice of
bundles made before the setting); the linear projection to 512
(``visual.head.proj``) is kept in the files but unused.

``tiny`` is the same code path and file format around timm's ``test_vit`` (dim 64, 6 blocks,
2 heads, patch 16) at 224 px (196 patches + CLS). It has no pretrained weights: it is random
and TESTING ONLY.

This module is the architecture only; weights folders (convert, fetch, find, verify, load) are
in :mod:`bids_amyloid.models.weights`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from bids_amyloid.errors import UsageError

BACKBONES: dict[str, dict[str, Any]] = {
    "biomedclip": {
        "embed_dim": 512,
        "vision_cfg": {
            "timm_model_name": "vit_base_patch16_224",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 224,
        },
        "testing_only": False,
    },
    "tiny": {
        "embed_dim": 32,
        "vision_cfg": {
            "timm_model_name": "test_vit",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 224,
        },
        # test_vit defaults to 160 px with a dynamic size; fix it at 224 (14 x 14 patches).
        "trunk_kwargs": {"img_size": 224, "dynamic_img_size": False},
        "testing_only": True,
    },
}
"""open_clip model configs of the supported backbones (text tower omitted: never built)."""


def check_kind(kind: str) -> str:
    if kind not in BACKBONES:
        raise UsageError(f"unknown backbone {kind!r}; choose from {sorted(BACKBONES)}")
    return kind


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with a fixed torch seed without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_visual(kind: str) -> nn.Module:
    """open_clip's TimmModel for ``kind`` with random weights (no download)."""
    from open_clip.timm_model import TimmModel

    spec = BACKBONES[check_kind(kind)]
    vcfg = spec["vision_cfg"]
    visual = TimmModel(
        vcfg["timm_model_name"],
        embed_dim=spec["embed_dim"],
        image_size=vcfg["image_size"],
        pool=vcfg["timm_pool"],
        proj=vcfg["timm_proj"],
        pretrained=False,
    )
    if spec.get("trunk_kwargs"):
        import timm

        # Same construction as TimmModel (pool '' keeps timm's CLS pooling), with fixed kwargs.
        trunk = timm.create_model(vcfg["timm_model_name"], pretrained=False, **spec["trunk_kwargs"])
        trunk.reset_classifier(0)
        visual.trunk = trunk
    return visual


class SliceEncoder(nn.Module):
    """A 2-D slice -> its CLS embedding (``[N, 3, 224, 224] -> [N, width]``).

    ``frozen_blocks`` (set by :func:`bids_amyloid.models.lora.add_lora`) is the number of leading
    transformer blocks without trainable parameters: :meth:`frozen_prefix` runs the patch
    embedding and those blocks (no autograd), :meth:`forward_from_prefix` the rest, so a caller
    may cache the prefix tokens of un-augmented slices. ``forward(x) ==
    forward_from_prefix(frozen_prefix(x))`` (up to autograd).
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = check_kind(kind)
        self.visual = build_visual(kind)
        self.frozen_blocks = 0
        self.grad_checkpointing = False
        self.cls_pre_norm = False  # the CLS token before trunk.norm (ModelConfig.cls_token, set by build_network)
        self.weights_digest: str | None = None  # tensorfiles.tensor_digest of the loaded weights (None: random)

    @property
    def trunk(self) -> nn.Module:
        """The timm VisionTransformer (saliency hooks ``trunk.blocks[-1]``)."""
        return self.visual.trunk

    @property
    def width(self) -> int:
        return int(self.trunk.embed_dim)

    @property
    def n_blocks(self) -> int:
        return len(self.trunk.blocks)

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.trunk.num_prefix_tokens)

    @property
    def testing_only(self) -> bool:
        return bool(BACKBONES[self.kind]["testing_only"])

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the trainable blocks' activations during backward (less memory, more compute)."""
        self.grad_checkpointing = enable

    def forward(self, x: Tensor) -> Tensor:
        """CLS token after the final norm (= ``trunk.forward_features(x)[:, 0]``), or before it with
        ``cls_pre_norm``; differentiable."""
        x = self._embed_tokens(x)
        for block in self.trunk.blocks[: self.frozen_blocks]:
            x = block(x)
        return self.forward_from_prefix(x)

    def _embed_tokens(self, x: Tensor) -> Tensor:
        t = self.trunk
        x = t.patch_embed(x)
        x = t._pos_embed(x)
        x = t.patch_drop(x)
        return t.norm_pre(x)

    @torch.no_grad()
    def frozen_prefix(self, x: Tensor) -> Tensor:
        """Tokens after the last frozen block, ``[N, T, width]`` (T = 197 at 224 px); no autograd."""
        x = self._embed_tokens(x)
        for block in self.trunk.blocks[: self.frozen_blocks]:
            x = block(x)
        return x

    def forward_from_prefix(self, tokens: Tensor) -> Tensor:
        """Remaining blocks (+ final norm) on :meth:`frozen_prefix` tokens -> CLS ``[N, width]``."""
        x = tokens
        use_ckpt = self.grad_checkpointing and torch.is_grad_enabled()
        for block in self.trunk.blocks[self.frozen_blocks:]:
            x = checkpoint(block, x, use_reentrant=False) if use_ckpt else block(x)
        return self.cls(x)

    def cls(self, tokens: Tensor) -> Tensor:
        """The slice embedding from the last block's tokens: CLS before or after ``trunk.norm``."""
        return (tokens if self.cls_pre_norm else self.trunk.norm(tokens))[:, 0]
