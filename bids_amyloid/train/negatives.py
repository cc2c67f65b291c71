"""Centiloid-aware negatives for the phase-1 triplet loss (method.md 4.2).

A negative for anchor session ``a`` is a training session of ANOTHER subject whose Centiloid
differs from ``a``'s by at least ``min_delta`` (5 CL). How we read the fallback list
"15, 10, 5, 2.5, 1": it is a descending ladder of thresholds; the search starts at the rung
``min_delta`` and steps DOWN only when no candidate qualifies (with the default 5: 5 -> 2.5 -> 1).
Rungs above ``min_delta`` (15, 10) are used only when ``min_delta`` is set above them; reading
the list top-down from 15 would make the stated ">= 5" rule dead code. When no rung leaves a
candidate, any other-subject session is used (counted in :attr:`fallback_counts`).
Sessions without a Centiloid (a ready binary status column) count as valid negatives of an
anchor only when their labels differ.

``random`` picks uniformly among the candidates (the authors' choice). ``hard`` mines online:
the candidate whose current embedding (a bank refreshed by the caller, usually once per epoch)
is closest to the anchor's, or with ``semi_hard`` the closest one that is still farther than
the positive (falling back to the closest when none is).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from bids_amyloid.errors import UsageError
from bids_amyloid.train.runtime import generator

log = logging.getLogger("bids_amyloid.train")

LADDER = (15.0, 10.0, 5.0, 2.5, 1.0)


class CentiloidNegativeSampler:
    """Choose negatives among the sessions of one training split (indices into that split)."""

    def __init__(self, subjects: Sequence[str], centiloids: Sequence[float | None], labels: Sequence[int], *,
                 min_delta: float = 5.0, ladder: Sequence[float] = LADDER, mode: str = "random",
                 semi_hard: bool = False, seed: int = 0):
        if mode not in ("random", "hard"):
            raise UsageError(f"unknown negative sampling {mode!r}; use 'random' or 'hard'")
        if not len(subjects) == len(centiloids) == len(labels):
            raise ValueError("subjects, centiloids and labels must have the same length")
        self.mode, self.semi_hard, self.seed = mode, semi_hard, seed
        self.thresholds = (float(min_delta),) + tuple(sorted((t for t in ladder if t < min_delta), reverse=True))
        self.subjects = np.asarray(subjects, dtype=object)
        self.centiloids = np.asarray([np.nan if c is None else float(c) for c in centiloids], dtype=float)
        self.labels = np.asarray(labels, dtype=int)
        self.fallback_counts: Counter[str] = Counter()
        self._candidates = [self._find(i) for i in range(len(self.subjects))]
        used = Counter(rule for _, rule in self._candidates)
        if set(used) - {f">={self.thresholds[0]:g}"}:
            log.info("negative candidates: %s (Centiloid-difference rung used per anchor)", dict(used))

    def _find(self, anchor: int) -> tuple[np.ndarray, str]:
        other = self.subjects != self.subjects[anchor]
        if not other.any():
            raise UsageError("the training split holds one subject only: no negative of another subject exists")
        delta = np.abs(self.centiloids - self.centiloids[anchor])
        label_differs = self.labels != self.labels[anchor]
        for t in self.thresholds:
            ok = other & np.where(np.isnan(delta), label_differs, delta >= t)
            if ok.any():
                return np.flatnonzero(ok), f">={t:g}"
        return np.flatnonzero(other), "any-other-subject"

    def candidates(self, anchor: int) -> np.ndarray:
        """Indices of the valid negatives of ``anchor``."""
        return self._candidates[anchor][0]

    def rule(self, anchor: int) -> str:
        """The rung that produced the candidates (e.g. '>=5', '>=2.5', 'any-other-subject')."""
        return self._candidates[anchor][1]

    def choose(self, anchors: Sequence[int], *, epoch: int = 0, anchor_emb: Tensor | None = None,
               positive_emb: Tensor | None = None, bank: Tensor | None = None) -> list[int]:
        """One negative per anchor.

        ``hard`` needs ``anchor_emb`` [B, D] and ``bank`` [N, D] (embeddings of every session of the
        split); ``semi_hard`` also ``positive_emb`` [B, D]. The random choice is seeded by
        (seed, epoch, anchor), so it does not depend on batch composition or process count.
        """
        chosen = []
        for row, anchor in enumerate(anchors):
            cands = self.candidates(int(anchor))
            self.fallback_counts[self.rule(int(anchor))] += 1
            if self.mode == "random":
                gen = generator(self.seed, "negative", epoch, int(anchor))
                chosen.append(int(cands[int(torch.randint(len(cands), (), generator=gen))]))
                continue
            if anchor_emb is None or bank is None:
                raise ValueError("hard negative mining needs anchor embeddings and an embedding bank")
            a = anchor_emb[row].detach().float().cpu()
            dist = torch.linalg.vector_norm(bank[torch.as_tensor(cands)].float().cpu() - a, dim=1)
            order = torch.argsort(dist)
            pick = order[0]
            if self.semi_hard and positive_emb is not None:
                d_ap = torch.linalg.vector_norm(positive_emb[row].detach().float().cpu() - a)
                farther = order[dist[order] > d_ap]
                if len(farther):
                    pick = farther[0]
            chosen.append(int(cands[int(pick)]))
        return chosen
