"""Run the fold students on one session's slices: probabilities, slice weights and, optionally,
the per-slice attributions (Grad-CAM and input gradient) in the same pass.

Cost model (the reason for the structure): every fold student shares the frozen base backbone
and has LoRA only in its last blocks (``encoder.frozen_blocks`` onward), so the patch embedding
and the frozen blocks ("prefix") are run ONCE for all folds; each fold then runs only its own
blocks and heads. Grad-CAM needs gradients down to the input of the last block only; the input
gradient needs them down to the pixels, through the shared prefix, once per fold.

Attributions for one fold ``f`` and slice ``s`` (student logit ``z_f``):

* Grad-CAM: tokens ``A`` ENTERING the last transformer block (its output patch tokens cannot
  reach the CLS token: the final LayerNorm acts per token, so their gradient is zero).
  ``alpha_c = mean_p dz/dA[p, c]`` over the 14 x 14 patch tokens, ``cam[p] = ReLU(sum_c alpha_c
  A[p, c])`` on the patch grid (CLS/prefix tokens dropped).
* Input gradient: ``sum_channels |dz/dx|`` on the 224 x 224 model input.

Each fold's slice maps are multiplied by that fold's attention-pooling slice weights, scaled so
the fold's maps sum to 1 over all slices (every fold gets the same say), and averaged over folds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bids_amyloid.models.device import autocast
from torch import Tensor

METHODS = ("gradcam", "gradient")
"""Saliency methods, in output order."""


@dataclass
class EnsembleResult:
    logits: np.ndarray
    """[F] one logit per fold."""
    slice_weights: np.ndarray
    """[F, S] attention-pooling slice weights per fold."""
    maps: dict[str, np.ndarray]
    """method -> [S, h, w] fold-averaged, slice-weighted map (gradcam on the patch grid,
    gradient on the input grid); only the methods asked for."""

    @property
    def probabilities(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits.astype(np.float64)))


def shared_prefix_depth(students: Sequence[torch.nn.Module]) -> int:
    """Leading blocks that are identical in every fold (frozen, without LoRA), at most n - 1
    (the last block always runs per fold: Grad-CAM hooks its input)."""
    encoders = [s.encoder for s in students]
    n_blocks = {e.n_blocks for e in encoders}
    if len(n_blocks) != 1:
        raise ValueError("fold students with different backbones")
    depth = min(min(e.frozen_blocks for e in encoders), n_blocks.pop() - 1)
    for e in encoders:
        for block in e.trunk.blocks[:depth]:
            if any("lora_" in name for name, _ in block.named_parameters()):
                raise ValueError("LoRA found inside the frozen prefix")
    return depth


def _prefix(encoder: torch.nn.Module, x: Tensor, depth: int) -> Tensor:
    tokens = encoder._embed_tokens(x)  # patch embedding + position embedding, as SliceEncoder
    for block in encoder.trunk.blocks[:depth]:
        tokens = block(tokens)
    return tokens


def _head(net: torch.nn.Module, last_input: Tensor, n_slices: int) -> tuple[Tensor, Tensor]:
    """Last block -> CLS (before or after the final norm) -> projection -> self_attn pooling ->
    classifier: the tail of ``AmyloidNet.student`` for one session (tests check they agree)."""
    cls = net.encoder.cls(net.encoder.trunk.blocks[-1](last_input))
    emb = net.projection(cls).view(1, n_slices, -1)
    pooled, weights = net.self_attn(emb, emb)
    return net.classifier(pooled).reshape(()), weights[0]


def _gradcam(tokens: Tensor, grads: Tensor, n_prefix: int) -> Tensor:
    patches, g = tokens[:, n_prefix:].float(), grads[:, n_prefix:].float()
    cam = torch.relu((patches * g.mean(dim=1, keepdim=True)).sum(dim=-1))
    side = int(round(cam.shape[1] ** 0.5))
    return cam.view(-1, side, side)


def _fold_share(maps: Tensor, weights: Tensor) -> Tensor:
    weighted = maps * weights.float().view(-1, 1, 1)
    total = weighted.sum()
    return weighted / total if total > 0 else weighted


def run_ensemble(students: Sequence[torch.nn.Module], x: Tensor, *, methods: Sequence[str] = (),
                 cpu_bf16: bool = False) -> EnsembleResult:
    """``x``: one session's model input ``[S, 3, 224, 224]`` (on the students' device)."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown saliency method(s) {sorted(unknown)}")
    device = x.device
    n_slices = x.shape[0]
    depth = shared_prefix_depth(students)
    want_cam, want_grad = "gradcam" in methods, "gradient" in methods
    logits, weights = [], []
    sums = {m: None for m in methods}
    grad_mode = torch.enable_grad() if methods else torch.inference_mode()
    with grad_mode, autocast(device, cpu_bf16=cpu_bf16):
        x_in = x.detach().clone().requires_grad_(want_grad)
        with torch.set_grad_enabled(want_grad):
            prefix = _prefix(students[0].encoder, x_in, depth)
        for fold, net in enumerate(students):
            blocks = net.encoder.trunk.blocks
            with torch.set_grad_enabled(want_grad):
                tokens = prefix
                for block in blocks[depth:-1]:
                    tokens = block(tokens)
            if want_cam and not want_grad:
                tokens = tokens.detach().requires_grad_(True)
            logit, w = _head(net, tokens, n_slices)
            logits.append(float(logit.detach().float()))
            weights.append(w.detach().float())
            if not methods:
                continue
            inputs = ([tokens] if want_cam else []) + ([x_in] if want_grad else [])
            grads = torch.autograd.grad(logit.float(), inputs, retain_graph=want_grad and fold < len(students) - 1)
            fold_maps = {}
            if want_cam:
                fold_maps["gradcam"] = _gradcam(tokens.detach(), grads[0], net.encoder.num_prefix_tokens)
            if want_grad:
                fold_maps["gradient"] = grads[-1].float().abs().sum(dim=1)
            for method, m in fold_maps.items():
                share = _fold_share(m, w.detach())
                sums[method] = share if sums[method] is None else sums[method] + share
            del grads, tokens, logit
    n = len(students)
    maps = {m: (sums[m] / n).cpu().numpy().astype(np.float32) for m in methods}
    return EnsembleResult(np.asarray(logits, dtype=np.float64), torch.stack(weights).cpu().numpy(), maps)
