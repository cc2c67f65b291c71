"""Teacher (PET + MRI) and student (MRI only) networks: one class, as in the method.

``AmyloidNet`` = slice encoder (BiomedCLIP vision tower + LoRA) -> per-slice projection head
(width -> 256 -> 128) -> attention pooling (``cross_attn`` for the teacher: query PET, key/value
MRI; ``self_attn`` for the student and for PET-only embeddings) -> classifier (128 -> 64 -> 1).
The paper's student IS the teacher network continued with the PET branch dropped, so both are
instances of this class (``student_layout='paper'``); ``'small'`` is a lighter student (LoRA
rank 8 on the last quarter of the blocks, hidden sizes halved) with the same 128-d output, so
feature distillation against a paper-layout teacher still works.

Every ``slices`` argument is either images ``[B, S, 3, H, W]`` or cached prefix tokens
``[B, S, T, C]`` from ``encoder.frozen_prefix`` (dispatch on the number of dimensions).
"""
from __future__ import annotations

import copy
import functools

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from bids_amyloid.config import ModelConfig
from bids_amyloid.errors import UsageError
from bids_amyloid.models.backbone import SliceEncoder, seeded
from bids_amyloid.models.lora import add_lora
from bids_amyloid.models.pooling import AttentionPooling
from bids_amyloid.models.weights import load_slice_encoder

STUDENT_LAYOUTS = ("paper", "small")


@dataclass
class NetOutput:
    logit: Tensor
    """[B] one logit per session."""
    pooled: Tensor
    """[B, D] pooled session embedding (D = proj_dim, 128)."""
    slice_weights: Tensor
    """[B, S] softmax weights of the query slices."""


@dataclass(frozen=True)
class Layout:
    lora_rank: int
    lora_alpha: float
    lora_first_block: int | None
    proj_hidden: int
    clf_hidden: int


def layout_for(model_config: ModelConfig, student_layout: str, n_blocks: int) -> Layout:
    """Sizes of the network for a layout ('paper' follows ``model_config``)."""
    if student_layout == "paper":
        return Layout(model_config.lora_rank, model_config.lora_alpha, model_config.lora_first_block, 256, 64)
    if student_layout == "small":
        rank = max(1, model_config.lora_rank // 4)
        return Layout(rank, model_config.lora_alpha * rank / model_config.lora_rank,
                      n_blocks - max(1, n_blocks // 4), 128, 32)
    raise UsageError(f"unknown student layout {student_layout!r}; choose from {list(STUDENT_LAYOUTS)}")


class AmyloidNet(nn.Module):
    def __init__(self, encoder: SliceEncoder, *, proj_dim: int = 128, proj_hidden: int = 256,
                 clf_hidden: int = 64, heads: int = 4, temperature: float = 2.0,
                 projection_dropout: tuple[float, float] = (0.5, 0.4), classifier_dropout: float = 0.6,
                 attn_dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.proj_dim = proj_dim
        self.projection = nn.Sequential(
            nn.Linear(encoder.width, proj_hidden), nn.LayerNorm(proj_hidden), nn.GELU(),
            nn.Dropout(projection_dropout[0]),
            nn.Linear(proj_hidden, proj_dim), nn.LayerNorm(proj_dim), nn.Dropout(projection_dropout[1]),
        )
        self.cross_attn = AttentionPooling(proj_dim, heads, attn_dropout, temperature)
        self.self_attn = AttentionPooling(proj_dim, heads, attn_dropout, temperature)
        self.classifier = nn.Sequential(
            nn.Linear(proj_dim, clf_hidden), nn.ReLU(), nn.Dropout(classifier_dropout), nn.Linear(clf_hidden, 1),
        )

    # ---- embeddings ------------------------------------------------------------------------
    def embed(self, slices: Tensor) -> Tensor:
        """``[B, S, 3, H, W]`` images (or ``[B, S, T, C]`` prefix tokens) -> ``[B, S, proj_dim]``."""
        if slices.dim() == 4:
            return self.embed_prefix(slices)
        if slices.dim() != 5:
            raise ValueError(f"expected [B,S,3,H,W] images or [B,S,T,C] prefix tokens, got {tuple(slices.shape)}")
        b, s = slices.shape[:2]
        feats = self.encoder(slices.flatten(0, 1))
        return self.projection(feats).view(b, s, -1)

    def embed_prefix(self, tokens: Tensor) -> Tensor:
        """Cached ``encoder.frozen_prefix`` tokens ``[B, S, T, C]`` -> ``[B, S, proj_dim]``."""
        b, s = tokens.shape[:2]
        feats = self.encoder.forward_from_prefix(tokens.flatten(0, 1))
        return self.projection(feats).view(b, s, -1)

    def frozen_prefix(self, slices: Tensor) -> Tensor:
        """``[B, S, 3, H, W]`` -> cacheable prefix tokens ``[B, S, T, C]`` (no autograd)."""
        b, s = slices.shape[:2]
        tokens = self.encoder.frozen_prefix(slices.flatten(0, 1))
        return tokens.view(b, s, *tokens.shape[1:])

    def _embed_pair(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Embed two inputs in one encoder pass when their shapes allow it."""
        if a.shape == b.shape:
            both = self.embed(torch.cat([a, b], dim=0))
            return both[: a.shape[0]], both[a.shape[0]:]
        return self.embed(a), self.embed(b)

    def _classify(self, pooled: Tensor, weights: Tensor) -> NetOutput:
        return NetOutput(self.classifier(pooled).squeeze(-1), pooled, weights)

    # ---- heads -----------------------------------------------------------------------------
    def teacher(self, mri: Tensor, pet: Tensor) -> NetOutput:
        """cross_attn(query = PET slice embeddings, key/value = MRI slice embeddings)."""
        mri_emb, pet_emb = self._embed_pair(mri, pet)
        return self._classify(*self.cross_attn(pet_emb, mri_emb))

    def pet_pooled(self, pet: Tensor) -> Tensor:
        """self_attn over PET slices -> ``[B, D]`` (triplet positive / negative)."""
        emb = self.embed(pet)
        return self.self_attn(emb, emb)[0]

    def student(self, mri: Tensor) -> NetOutput:
        """self_attn over MRI slices (MRI only)."""
        emb = self.embed(mri)
        return self._classify(*self.self_attn(emb, emb))

    def forward(self, mri: Tensor, pet: Tensor | None = None) -> NetOutput:
        return self.student(mri) if pet is None else self.teacher(mri, pet)

    # ---- training helpers ------------------------------------------------------------------
    def set_dropouts(self, projection: tuple[float, float], classifier: float) -> None:
        """Change the projection head's two and the classifier's dropout probabilities."""
        drops = [m for m in self.projection if isinstance(m, nn.Dropout)]
        drops[0].p, drops[1].p = projection
        next(m for m in self.classifier if isinstance(m, nn.Dropout)).p = classifier

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group: 'lora', 'projection', 'attention', 'classifier'."""
        groups = {
            "lora": [p for n, p in self.encoder.named_parameters() if "lora_" in n],
            "projection": list(self.projection.parameters()),
            "attention": list(self.cross_attn.parameters()) + list(self.self_attn.parameters()),
            "classifier": list(self.classifier.parameters()),
        }
        return {k: [p for p in v if p.requires_grad] for k, v in groups.items()}

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Everything except the frozen base backbone (what a bundle stores per fold)."""
        return {k: v for k, v in self.state_dict().items() if not is_base_key(k)}

    def base_state_dict(self) -> dict[str, Tensor]:
        """The frozen base backbone tensors, keyed as in ``vision.safetensors``."""
        prefix = "encoder."
        return {k[len(prefix):]: v for k, v in self.state_dict().items() if is_base_key(k)}


def is_base_key(key: str) -> bool:
    """True for a base (frozen, shared) backbone tensor of an :class:`AmyloidNet` state dict."""
    return key.startswith("encoder.") and "lora_" not in key


@functools.lru_cache(maxsize=2)
def _meta_encoder(kind: str) -> SliceEncoder:
    """An encoder without storage, to be copied and filled by ``load_state_dict(assign=True)``:
    timm initialises weights even on the meta device (1.4 s for 5 tiny folds), so it is built once."""
    with torch.device("meta"):
        return SliceEncoder(kind)


def build_network(model_config: ModelConfig, weights_dir: Path | None = None, *,
                  student_layout: str = "paper", encoder_state: Mapping[str, Tensor] | None = None,
                  seed: int = 0) -> AmyloidNet:
    """Encoder (weights from ``weights_dir`` or ``model_config.backbone_weights`` / the usual
    places; see ``resolve_weights_dir``) + LoRA + heads. Head and LoRA initialisation uses
    ``seed`` (the caller's RNG state is left alone).

    ``encoder_state`` (base tensors keyed as in vision.safetensors) skips reading the weights
    folder; the tensors are used in place (shared, not copied) -- the bundle loader uses this to
    keep one backbone in memory for all folds.
    """
    kind = model_config.backbone
    if encoder_state is not None:
        encoder = copy.deepcopy(_meta_encoder(kind))
        encoder.load_state_dict(dict(encoder_state), strict=True, assign=True)
        encoder.eval()
    else:
        encoder = load_slice_encoder(kind, weights_dir if weights_dir is not None else model_config.backbone_weights)
    encoder.cls_pre_norm = model_config.cls_token == "pre-norm"
    layout = layout_for(model_config, student_layout, encoder.n_blocks)
    with seeded(seed):
        add_lora(encoder, layout.lora_rank, layout.lora_alpha, model_config.lora_dropout, layout.lora_first_block)
        net = AmyloidNet(encoder, proj_dim=model_config.proj_dim, proj_hidden=layout.proj_hidden,
                         clf_hidden=layout.clf_hidden, heads=model_config.attn_heads,
                         temperature=model_config.pooling_temperature)
    net.layout = student_layout
    return net
