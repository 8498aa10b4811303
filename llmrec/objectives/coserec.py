"""coserec: contrastive learning with correlation-aware augmentations (Liu et al., 2021, CoSeRec).

Like CL4SRec (two views, NT-Xent), with two more operations that keep a sequence's meaning: *substitute* an
item by a correlated one, *insert* a correlated item before one; each touches max(⌊ρ·len⌋, 1) items, as the
authors' code rounds (salesforce/CoSeRec, `data_augmentation.py`). Long sequences draw one of the five
operations uniformly per view; sequences of ≤ `short_len` items draw from insert / substitute / mask (the
authors' default `augment_type_for_short: SIM`; cropping or reordering a very short sequence destroys it).
Correlation comes from

    memory-based  Cor_o(i, j) = 1/sqrt(|N(i)|·|N(j)|) · Σ_{u ∈ N(i)∩N(j)} 1/log(1 + |N(u)|)
    model-based   Cor_e(i, j) = e_i · e_j         (the encoder's own item embeddings)

where N(i) are the users who interacted with item i in the training part and N(u) the items of user u.
The schedule of the authors' code, `correlation: hybrid`: memory-based only during a warm-up (epochs before
`switch_epoch`); from then on, refreshed at the start of every epoch, each item takes the better of the two —
its top memory-based and top model-based neighbours compete by their scores, each min–max normalised over all
pairs of its kind, ties to the memory side (an item without any co-occurring item takes the model's).
`memory` and `model` use one kind throughout. Each item's `top_k` most correlated items (itself excluded)
are candidates for substitution / insertion (CoSeRec: 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from llmrec.objectives import augment
from llmrec.objectives.base import (
    Objective,
    ObjectiveContext,
    ObjectiveOutput,
    SeqBatch,
    info_nce,
    sequence_input,
)


class Correlation(NamedTuple):
    """ids (N+2, K): each item's K most correlated items (0 = none; rows 0 and N+1 — padding and [MASK] — are
    0); scores (N+2, K) their correlations; lo / hi the smallest and largest correlation over all pairs
    considered (co-occurring pairs for memory-based, every pair of distinct items for model-based)."""

    ids: torch.Tensor
    scores: torch.Tensor
    lo: float
    hi: float


def memory_correlation(split, top_k: int = 1, chunk: int = 2048) -> Correlation:
    """Cor_o top-k neighbours of every item, from the training part of `split`."""
    X = split.train_matrix("train").tocsr().astype(np.float64)  # (U+1, N+1) binary
    n_u = np.asarray(X.sum(axis=1)).ravel()  # |N(u)|
    w = np.where(n_u > 0, 1.0 / np.log1p(np.maximum(n_u, 1)), 0.0)
    n_i = np.asarray(X.sum(axis=0)).ravel()  # |N(i)|
    XtW = X.T.multiply(w[None, :]).tocsr()  # (N+1, U+1)
    inv = np.where(n_i > 0, 1.0 / np.sqrt(np.maximum(n_i, 1)), 0.0)
    N1 = X.shape[1]
    ids = np.zeros((N1 + 1, top_k), dtype=np.int64)
    scores = np.zeros((N1 + 1, top_k), dtype=np.float64)
    lo, hi = np.inf, -np.inf
    for s in range(1, N1, chunk):
        rows = slice(s, min(s + chunk, N1))
        C = (XtW[rows] @ X).toarray()  # (c, N+1) Σ_u 1/log(1+|N(u)|)
        C *= inv[rows][:, None] * inv[None, :]
        C[:, 0] = 0.0
        C[np.arange(C.shape[0]), np.arange(rows.start, rows.stop)] = -1.0  # never the item itself
        pos = C[C > 0]
        if pos.size:
            lo, hi = min(lo, float(pos.min())), max(hi, float(pos.max()))
        k = min(top_k, C.shape[1] - 1)
        top = np.argpartition(-C, k - 1, axis=1)[:, :k] if k < C.shape[1] else np.argsort(-C, axis=1)[:, :k]
        order = np.take_along_axis(C, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        val = np.take_along_axis(C, top, axis=1)
        ids[rows, :k] = np.where(val > 0, top, 0)
        scores[rows, :k] = np.where(val > 0, val, 0.0)
    if not np.isfinite(lo):
        lo, hi = 0.0, 0.0
    return Correlation(torch.from_numpy(ids), torch.from_numpy(scores), lo, hi)


@torch.no_grad()
def model_correlation(item_embeddings: torch.Tensor, top_k: int = 1, chunk: int = 4096) -> Correlation:
    """Cor_e top-k neighbours by e_i · e_j over (N, H) embeddings of items 1..N (itself excluded)."""
    E = item_embeddings.detach()
    N = E.shape[0]
    k = min(top_k, N - 1)
    ids = torch.zeros(N + 2, top_k, dtype=torch.long)
    scores = torch.zeros(N + 2, top_k, dtype=torch.float64)
    lo, hi = float("inf"), float("-inf")
    for s in range(0, N, chunk):
        sc = E[s : s + chunk] @ E.T  # (c, N)
        idx = torch.arange(sc.shape[0])
        sc[idx, idx + s] = float("inf")
        lo = min(lo, float(sc.min()))
        sc[idx, idx + s] = float("-inf")
        hi = max(hi, float(sc.max()))
        top = sc.topk(k, dim=1)
        ids[s + 1 : s + 1 + sc.shape[0], :k] = top.indices + 1
        scores[s + 1 : s + 1 + sc.shape[0], :k] = top.values.to(torch.float64)
    return Correlation(ids, scores, lo, hi)


def better_of_two(memory: Correlation, model: Correlation) -> torch.Tensor:
    """(N+2, K) ids: per item, the neighbours of whichever kind has the higher min–max-normalised top score
    (ties to memory; an item with no co-occurring item takes the model's)."""

    def norm(c: Correlation) -> torch.Tensor:
        return (c.scores[:, 0] - c.lo) / max(c.hi - c.lo, 1e-12)

    mem = norm(memory).masked_fill(memory.ids[:, 0] == 0, float("-inf"))
    use_memory = mem >= norm(model)  # (N+2,)
    out = torch.where(use_memory[:, None], memory.ids, model.ids)
    out[0] = 0
    out[-1] = 0
    return out


class CoSeRec(Objective):
    """Two views from crop/mask/reorder/substitute/insert (correlation-aware) + InfoNCE."""

    name = "coserec"
    requires = "any"

    @dataclass
    class Options:
        crop_ratio: float = 0.6
        mask_ratio: float = 0.3
        reorder_ratio: float = 0.6
        substitute_ratio: float = 0.1  # the authors' default (--substitute_rate)
        insert_ratio: float = 0.4  # the authors' default (--insert_rate)
        short_len: int = 4  # sequences this short draw from insert / substitute / mask (--augment_threshold)
        top_k: int = 1  # correlated candidates per item (CoSeRec uses the single most correlated)
        correlation: Literal["memory", "model", "hybrid"] = "hybrid"
        switch_epoch: int = 5  # hybrid: memory-based warm-up for this many epochs of the stage, then the better
        temperature: float = 1.0
        similarity: Literal["dot", "cos"] = "dot"

    SHORT_OPS = ("insert", "substitute", "mask")

    def __init__(self, model: nn.Module, options=None, context: ObjectiveContext | None = None) -> None:
        super().__init__(model, options, context)
        self.correlated: torch.Tensor | None = None
        self.memory: Correlation | None = None
        if self.options.correlation in ("memory", "hybrid"):
            if self.context.split is None:
                raise ValueError("coserec with memory-based correlation needs the training split")
            self.memory = memory_correlation(self.context.split, self.options.top_k)
            self.correlated = self.memory.ids
        self.source = "memory" if self.memory is not None else "model"

    def on_epoch_start(self, epoch: int) -> None:
        o = self.options
        if o.correlation == "model":
            self.correlated = model_correlation(self.model.item_embeddings(), o.top_k).ids
        elif o.correlation == "hybrid" and epoch >= o.switch_epoch:
            assert self.memory is not None
            model = model_correlation(self.model.item_embeddings(), o.top_k)
            self.correlated = better_of_two(self.memory, model)
            self.source = "hybrid"

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        if self.correlated is None:
            self.on_epoch_start(batch.epoch)
        o = self.options
        seq = sequence_input(batch, self.model.max_len)  # (B, T)
        kw = dict(crop_ratio=o.crop_ratio, mask_ratio=o.mask_ratio, reorder_ratio=o.reorder_ratio,
                  substitute_ratio=o.substitute_ratio, insert_ratio=o.insert_ratio,
                  mask_token=self.model.mask_token, correlated=self.correlated,
                  short_ops=self.SHORT_OPS, short_len=o.short_len)
        v1 = augment.random_augment(seq, augment.OPS, batch.rng, **kw)
        v2 = augment.random_augment(seq, augment.OPS, batch.rng, **kw)
        z1, z2 = self.model.encode(v1), self.model.encode(v2)
        same_user = batch.users[:, None] == batch.users[None, :]
        loss = info_nce(z1, z2, o.temperature, o.similarity, same=same_user)
        return ObjectiveOutput(loss, {"coserec": float(loss.detach())}, n=int(seq.shape[0]))
