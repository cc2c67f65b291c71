"""Attention pooling of slice embeddings into one session vector (the method's block, used
as ``cross_attn`` (query PET, key/value MRI) and ``self_attn`` (query = key = value))."""
from __future__ import annotations

from torch import Tensor, nn


class AttentionPooling(nn.Module):
    """MHA (query Q, key = value K) -> residual on the query -> LayerNorm -> slice weights
    ``softmax(Linear(D -> 1) / T)`` over slices -> weighted sum.

    ``forward(query [B,S,D], context [B,S',D]) -> (pooled [B,D], weights [B,S])``. The weights
    belong to the query slices (the attended output has one row per query slice).
    ``key_padding_mask`` [B,S'] (True = ignore) is optional.
    """

    def __init__(self, dim: int = 128, heads: int = 4, dropout: float = 0.1, temperature: float = 2.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Linear(dim, 1)
        self.temperature = temperature

    def forward(self, query: Tensor, context: Tensor,
                key_padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        attended, _ = self.attn(query, context, context, key_padding_mask=key_padding_mask,
                                need_weights=False)
        tokens = self.norm(query + attended)
        weights = (self.score(tokens).squeeze(-1) / self.temperature).softmax(dim=-1)
        pooled = (weights.unsqueeze(-1) * tokens).sum(dim=1)
        return pooled, weights
