"""coserec: contrastive learning with correlation-aware augmentations (Liu et al., 2021, CoSeRec).

Like CL4SRec (two views, NT-Xent), with two more operations that keep a sequence's meaning: *substitute* an
item by a correlated one, *insert* a correlated item before one. Sequences of ≤ `short_len` items only get
those two (cropping or masking a very short sequence destroys it). Correlation comes from

    memory-based  Cor_o(i, j) = 1/sqrt(|N(i)|·|N(j)|) · Σ_{u ∈ N(i)∩N(j)} 1/log(1 + |N(u)|)
    model-based   Cor_e(i, j) = e_i · e_j         (the encoder's own item embeddings, refreshed each epoch)

where N(i) are the users who interacted with item i in the training part and N(u) the items of user u.
`correlation: hybrid` uses Cor_o before epoch `switch_epoch` and Cor_e from then on (CoSeRec's schedule).
Each item's `top_k` most correlated items (itself excluded) are candidates for substitution / insertion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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


def memory_correlation(split, top_k: int = 1, chunk: int = 2048) -> torch.Tensor:
    """(N+2, top_k) item ids: the most Cor_o-correlated items of each item from the training part (0 where an
    item has no co-occurring item; rows 0 and N+1 — padding and [MASK] — map to 0)."""
    X = split.train_matrix("train").tocsr().astype(np.float64)  # (U+1, N+1) binary
    n_u = np.asarray(X.sum(axis=1)).ravel()  # |N(u)|
    w = np.where(n_u > 0, 1.0 / np.log1p(np.maximum(n_u, 1)), 0.0)
    n_i = np.asarray(X.sum(axis=0)).ravel()  # |N(i)|
    XtW = X.T.multiply(w[None, :]).tocsr()  # (N+1, U+1)
    inv = np.where(n_i > 0, 1.0 / np.sqrt(np.maximum(n_i, 1)), 0.0)
    N1 = X.shape[1]
    out = np.zeros((N1 + 1, top_k), dtype=np.int64)
    for s in range(1, N1, chunk):
        rows = slice(s, min(s + chunk, N1))
        C = (XtW[rows] @ X).toarray()  # (c, N+1) Σ_u 1/log(1+|N(u)|)
        C *= inv[rows][:, None] * inv[None, :]
        C[:, 0] = 0.0
        C[np.arange(C.shape[0]), np.arange(rows.start, rows.stop)] = -1.0  # never the item itself
        k = min(top_k, C.shape[1] - 1)
        top = np.argpartition(-C, k - 1, axis=1)[:, :k] if k < C.shape[1] else np.argsort(-C, axis=1)[:, :k]
        order = np.take_along_axis(C, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        top = np.where(np.take_along_axis(C, top, axis=1) > 0, top, 0)
        out[rows, :k] = top
    return torch.from_numpy(out)


@torch.no_grad()
def model_correlation(item_embeddings: torch.Tensor, top_k: int = 1, chunk: int = 4096) -> torch.Tensor:
    """(N+2, top_k) item ids by e_i · e_j over (N, H) embeddings of items 1..N (itself excluded)."""
    E = item_embeddings.detach()
    N = E.shape[0]
    out = torch.zeros(N + 2, top_k, dtype=torch.long)
    for s in range(0, N, chunk):
        sc = E[s : s + chunk] @ E.T  # (c, N)
        idx = torch.arange(sc.shape[0])
        sc[idx, idx + s] = float("-inf")
        out[s + 1 : s + 1 + sc.shape[0]] = sc.topk(min(top_k, N - 1), dim=1).indices + 1
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
        substitute_ratio: float = 0.3
        insert_ratio: float = 0.3
        short_len: int = 4  # sequences this short only get substitute / insert
        top_k: int = 1  # correlated candidates per item (CoSeRec uses the single most correlated)
        correlation: Literal["memory", "model", "hybrid"] = "hybrid"
        switch_epoch: int = 5  # hybrid: model-based correlation from this epoch of the stage on
        temperature: float = 1.0
        similarity: Literal["dot", "cos"] = "dot"

    def __init__(self, model: nn.Module, options=None, context: ObjectiveContext | None = None) -> None:
        super().__init__(model, options, context)
        self.correlated: torch.Tensor | None = None
        if self.options.correlation in ("memory", "hybrid"):
            if self.context.split is None:
                raise ValueError("coserec with memory-based correlation needs the training split")
            self.correlated = memory_correlation(self.context.split, self.options.top_k)

    def on_epoch_start(self, epoch: int) -> None:
        o = self.options
        if o.correlation == "model" or (o.correlation == "hybrid" and epoch >= o.switch_epoch):
            self.correlated = model_correlation(self.model.item_embeddings(), o.top_k)

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        if self.correlated is None:
            self.on_epoch_start(batch.epoch)
        o = self.options
        seq = sequence_input(batch, self.model.max_len)  # (B, T)
        kw = dict(crop_ratio=o.crop_ratio, mask_ratio=o.mask_ratio, reorder_ratio=o.reorder_ratio,
                  substitute_ratio=o.substitute_ratio, insert_ratio=o.insert_ratio,
                  mask_token=self.model.mask_token, correlated=self.correlated,
                  short_ops=("substitute", "insert"), short_len=o.short_len)
        v1 = augment.random_augment(seq, augment.OPS, batch.rng, **kw)
        v2 = augment.random_augment(seq, augment.OPS, batch.rng, **kw)
        z1, z2 = self.model.encode(v1), self.model.encode(v2)
        same_user = batch.users[:, None] == batch.users[None, :]
        loss = info_nce(z1, z2, o.temperature, o.similarity, same=same_user)
        return ObjectiveOutput(loss, {"coserec": float(loss.detach())}, n=int(seq.shape[0]))
