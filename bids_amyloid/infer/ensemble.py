"""Run the fold students on one session's slices: probabilities, slice weights and, optionally,
the per-slice attributions (Grad-CAM and input gradient) in the same pass.

Cost model (the reason for the structure): every fold student shares the frozen base backbone
and has LoRA only in its last blocks (``encoder.frozen_blocks`` onward), so the patch embedding
and the frozen blocks ("prefix") are run ONCE for all folds, without autograd; each fold then runs
only its own blocks and heads. Grad-CAM needs gradients down to the input of the last block only.
The input gradient needs them down to the pixels: each fold backpropagates to the prefix tokens
(its own graph, freed at once), then the prefix is re-run with autograd over a few slices at a
time and each fold's prefix-token gradient is pulled back to the pixels. Memory therefore holds
one fold's graph plus a chunk's prefix graph, never all folds' graphs over the whole session.

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

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bids_amyloid.models.device import bf16_autocast, return_freed_memory
from torch import Tensor

METHODS = ("gradcam", "gradient")
"""Saliency methods, in output order."""
GRADIENT_OF = ("folds", "ensemble")
"""Whose logit the input-gradient map differentiates (``run_ensemble(gradient_of=...)``)."""
GRADIENT_CHUNK = 5
"""Slices per input-gradient backward through the shared prefix (memory per chunk, not per session)."""


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


@contextlib.contextmanager
def _attention_for_backward(students: Sequence[torch.nn.Module], device: torch.device) -> Iterator[None]:
    """On the CPU, timm's explicit attention (matmul, softmax, matmul) while gradients are asked
    for: torch's CPU flash-attention backward measured 6x its forward (1.9 s of 7.0 s for one
    ViT-B/16 fold, 25 slices, bf16); the explicit form's backward is plain matmuls. Same function,
    float rounding aside; the fused kernel is restored afterwards (prediction alone keeps it)."""
    attns = [b.attn for s in students for b in s.encoder.trunk.blocks if hasattr(b.attn, "fused_attn")]
    before = [a.fused_attn for a in attns]
    if device.type == "cpu":
        for a in attns:
            a.fused_attn = False
    try:
        yield
    finally:
        for a, fused in zip(attns, before):
            a.fused_attn = fused


def _input_gradients(encoder: torch.nn.Module, x: Tensor, depth: int, cotangents: Sequence[Tensor],
                     chunk: int) -> list[Tensor]:
    """``sum_channels |d/dx|`` of ``<prefix(x), cotangent>`` for each cotangent ``[S, T, width]``
    (the gradient of a logit with respect to the prefix tokens). Slices pass the encoder
    independently, so the prefix is re-run with autograd over ``chunk`` slices at a time: memory
    grows with the chunk, not with the session (one extra prefix forward; the backward is the same)."""
    n_slices = x.shape[0]
    maps = [torch.empty(n_slices, *x.shape[2:], device=x.device) for _ in cotangents]
    for lo in range(0, n_slices, chunk):
        hi = min(lo + chunk, n_slices)
        x_chunk = x[lo:hi].detach().requires_grad_(True)
        with torch.enable_grad():
            tokens = _prefix(encoder, x_chunk, depth)
        for i, cotangent in enumerate(cotangents):
            (grad,) = torch.autograd.grad(tokens, x_chunk, grad_outputs=cotangent[lo:hi].to(tokens.dtype),
                                          retain_graph=i < len(cotangents) - 1)
            maps[i][lo:hi] = grad.float().abs().sum(dim=1)
        del tokens, x_chunk
    return maps


def run_ensemble(students: Sequence[torch.nn.Module], x: Tensor, *, methods: Sequence[str] = (),
                 bf16: bool = False, gradient_of: str = "folds", chunk: int = GRADIENT_CHUNK) -> EnsembleResult:
    """``x``: one session's model input ``[S, 3, 224, 224]`` (on the students' device).

    ``bf16``: bf16 autocast (the caller decides, :func:`bids_amyloid.models.device.prediction_precision`).
    ``gradient_of``: ``"folds"``, the input gradient of each fold's logit, aggregated as in the
    module docstring; ``"ensemble"``, the input gradient of the folds' mean logit (one backward
    through the shared prefix instead of one per fold), weighted by the mean slice weights.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown saliency method(s) {sorted(unknown)}")
    if gradient_of not in GRADIENT_OF:
        raise ValueError(f"gradient_of must be one of {GRADIENT_OF}, not {gradient_of!r}")
    device = x.device
    n_slices = x.shape[0]
    depth = shared_prefix_depth(students)
    want_cam, want_grad = "gradcam" in methods, "gradient" in methods
    logits, weights, prefix_grads = [], [], []
    sums: dict[str, Tensor] = {}
    with bf16_autocast(device, bf16), _attention_for_backward(students, device) if methods else contextlib.nullcontext():
        with torch.no_grad():
            prefix = _prefix(students[0].encoder, x, depth)
        for net in students:
            with torch.set_grad_enabled(bool(methods)):
                start = prefix.detach().requires_grad_(want_grad)
                tokens = start
                for block in net.encoder.trunk.blocks[depth:-1]:
                    tokens = block(tokens)
                if want_cam and not want_grad:
                    tokens = tokens.detach().requires_grad_(True)
                logit, w = _head(net, tokens, n_slices)
            logits.append(float(logit.detach().float()))
            weights.append(w.detach().float())
            if not methods:
                continue
            grads = torch.autograd.grad(logit.float(), ([tokens] if want_cam else []) + ([start] if want_grad else []))
            if want_cam:
                _accumulate(sums, "gradcam", _fold_share(_gradcam(tokens.detach(), grads[0],
                                                                  net.encoder.num_prefix_tokens), weights[-1]))
            if want_grad:
                prefix_grads.append(grads[-1].detach())
            del grads, tokens, start, logit
            return_freed_memory(device)  # the fold's graph, before the next fold builds its own
        del prefix
        if want_grad:
            encoder = students[0].encoder
            if gradient_of == "ensemble":
                (grad_map,) = _input_gradients(encoder, x, depth, [torch.stack(prefix_grads).mean(0)], chunk)
                sums["gradient"] = _fold_share(grad_map, torch.stack(weights).mean(0)) * len(students)
            else:
                for grad_map, w in zip(_input_gradients(encoder, x, depth, prefix_grads, chunk), weights):
                    _accumulate(sums, "gradient", _fold_share(grad_map, w))
            return_freed_memory(device)
    n = len(students)
    maps = {m: (sums[m] / n).cpu().numpy().astype(np.float32) for m in methods}
    return EnsembleResult(np.asarray(logits, dtype=np.float64), torch.stack(weights).cpu().numpy(), maps)


def _accumulate(sums: dict[str, Tensor], method: str, share: Tensor) -> None:
    sums[method] = share if method not in sums else sums[method] + share
