"""LoRA on the attention projections (q, k, v, out) of the last transformer blocks.

timm fuses q, k and v into one ``attn.qkv`` Linear (``dim -> 3 dim``). The method puts a
separate rank-r adapter on each of q, k and v plus one on ``attn.proj``, which is what
:class:`LoRAQKV` does on the three slices of the fused output. For ViT-B/16, r 32, blocks 6-11
this gives 6 x (3 x 2 x 32 x 768 + 2 x 32 x 768) = 1,179,648 trainable parameters, the paper's
"about 1.2 M". Measured comparison: peft's LoRA on the fused ``qkv`` (one adapter 768 -> 2304)
plus ``proj`` gives 6 x (32 x (768 + 2304) + 2 x 32 x 768) = 884,736 (0.88 M) and would pull in
``transformers``; hence this small implementation.

The wrapped layers subclass ``nn.Linear`` and keep the base ``weight``/``bias`` under their
original names, so the base state-dict keys (``...attn.qkv.weight``) are unchanged and every
LoRA tensor has ``lora_`` in its name. B starts at zero: at initialisation the adapted encoder
computes exactly the base function.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bids_amyloid.models.backbone import SliceEncoder


class LoRALinear(nn.Linear):
    """``base(x) + scale * B(A(dropout(x)))`` with the base weight frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank = rank
        self.scale = alpha / rank
        self.lora_dropout = nn.Dropout(dropout)
        self._make_adapters(rank)

    def _make_adapters(self, rank: int) -> None:
        dev, dt = self.weight.device, self.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, device=dev, dtype=dt))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, device=dev, dtype=dt))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def lora_delta(self, x: Tensor) -> Tensor:
        return F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B) * self.scale

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias) + self.lora_delta(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lora_rank={self.rank}, lora_scale={self.scale:g}"


class LoRAQKV(LoRALinear):
    """Separate adapters for the q, k and v thirds of a fused ``qkv`` Linear."""

    def _make_adapters(self, rank: int) -> None:
        if self.out_features % 3:
            raise ValueError(f"fused qkv output {self.out_features} is not divisible by 3")
        dim = self.out_features // 3
        dev, dt = self.weight.device, self.weight.dtype
        for name in ("q", "k", "v"):
            a = nn.Parameter(torch.empty(rank, self.in_features, device=dev, dtype=dt))
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            setattr(self, f"lora_A_{name}", a)
            setattr(self, f"lora_B_{name}", nn.Parameter(torch.zeros(dim, rank, device=dev, dtype=dt)))

    def lora_delta(self, x: Tensor) -> Tensor:
        x = self.lora_dropout(x)
        a = torch.cat([self.lora_A_q, self.lora_A_k, self.lora_A_v], dim=0)  # [3r, in]
        hidden = F.linear(x, a).split(self.rank, dim=-1)
        out = [F.linear(h, b) for h, b in zip(hidden, (self.lora_B_q, self.lora_B_k, self.lora_B_v))]
        return torch.cat(out, dim=-1) * self.scale


def add_lora(encoder: SliceEncoder, rank: int, alpha: float, dropout: float, first_block: int | None) -> int:
    """Freeze every encoder parameter, then add LoRA to q, k, v and out of blocks
    ``first_block..end`` (None = second half). Sets ``encoder.frozen_blocks``; returns the
    number of trainable LoRA parameters."""
    blocks = encoder.trunk.blocks
    if first_block is None:
        first_block = len(blocks) // 2
    if not 0 <= first_block <= len(blocks):
        raise ValueError(f"LoRA first block {first_block} outside 0..{len(blocks)}")
    if any("lora_" in name for name, _ in encoder.named_parameters()):
        raise ValueError("LoRA already added to this encoder")
    for param in encoder.parameters():
        param.requires_grad_(False)
    for block in blocks[first_block:]:
        attn = block.attn
        attn.qkv = LoRAQKV(attn.qkv, rank, alpha, dropout)
        attn.proj = LoRALinear(attn.proj, rank, alpha, dropout)
    encoder.frozen_blocks = first_block
    encoder.lora_config = {"rank": rank, "alpha": alpha, "dropout": dropout, "first_block": first_block}
    return lora_parameter_count(encoder)


def lora_parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if "lora_" in n and p.requires_grad)


def lora_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The LoRA parameters (for their own optimizer group)."""
    return [p for n, p in module.named_parameters() if "lora_" in n]
