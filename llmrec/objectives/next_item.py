"""next_item: next-behaviour prediction (GPT-style), the objective SASRec is trained and fine-tuned with.

    L = − Σ_u Σ_t log p(x_{t+1} | x_≤t),   p(i | x_≤t) = softmax_i( h_t · e_i )  over all N items

(full-softmax cross-entropy; `loss: bce` is the SASRec paper's sampled binary cross-entropy with one negative
per position: − log σ(h_t·e_{x_{t+1}}) − log(1 − σ(h_t·e_neg)), the negative drawn uniformly from the items the
user never interacted with in the training part, as SASRec's sampler `random_neq(1, N+1, user_train[u])` does).
Every position of every window is a target once (`batch.fresh`), and needs at least one item before it.
Requires a causal encoder: a bidirectional one would see the answer (use `masked_item` for BERT4Rec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.objectives.base import Objective, ObjectiveContext, ObjectiveOutput, SeqBatch


def seen_keys(split) -> torch.Tensor:
    """Sorted (nnz,) keys u·(N+2) + i of every (user, item) pair in the training part of `split`."""
    m = split.train_matrix("train").tocoo()  # (U+1, N+1) binary
    keys = m.row.astype(np.int64) * (split.n_items + 2) + m.col.astype(np.int64)
    return torch.from_numpy(np.unique(keys))


def sample_unseen(users: torch.Tensor, n_items: int, seen: torch.Tensor, rng: torch.Generator,
                  max_rounds: int = 100) -> torch.Tensor:
    """(M,) items drawn uniformly from 1..N, each outside its user's training items (`seen`: `seen_keys`).

    Rejection sampling, vectorised: redraw only the colliding entries. A user who has seen nearly every item
    could keep colliding; after `max_rounds` the last draw stands (no real data set comes near)."""
    neg = torch.randint(1, n_items + 1, users.shape, generator=rng)
    if seen.numel() == 0:
        return neg
    for _ in range(max_rounds):
        key = users * (n_items + 2) + neg
        at = torch.searchsorted(seen, key).clamp(max=seen.numel() - 1)
        hit = seen[at] == key
        k = int(hit.sum())
        if k == 0:
            break
        neg[hit] = torch.randint(1, n_items + 1, (k,), generator=rng)
    return neg


class NextItem(Objective):
    """Next-item prediction at every position (full-softmax CE, or sampled BCE)."""

    name = "next_item"
    requires = "causal"
    supervised = True

    @dataclass
    class Options:
        loss: Literal["ce", "bce"] = "ce"

    def __init__(self, model, options=None, context: ObjectiveContext | None = None) -> None:
        super().__init__(model, options, context)
        self.seen: torch.Tensor | None = None
        if self.options.loss == "bce":
            if self.context.split is None:
                raise ValueError("next_item with loss: bce needs the training split (its negatives avoid each "
                                 "user's training items)")
            self.seen = seen_keys(self.context.split)

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        seq, fresh = trim_pair(batch.seq, batch.fresh)  # (B, L')
        inp, tgt = seq[:, :-1], seq[:, 1:]  # (B, T'), (B, T')
        valid = (tgt > 0) & (inp > 0) & fresh[:, 1:]
        h = self.model(inp)[valid]  # (M, H)
        targets = tgt[valid]  # (M,)
        owners = batch.users[:, None].expand_as(tgt)[valid]  # (M,) the user of each target
        if self.options.loss == "ce":
            loss = F.cross_entropy(self.model.item_logits(h), targets - 1)
        else:
            emb = self.model.item_embeddings()  # (N, H)
            neg = sample_unseen(owners, self.model.n_items, self.seen, batch.rng)  # (M,)
            pos_logit = (h * emb[targets - 1]).sum(-1)
            neg_logit = (h * emb[neg - 1]).sum(-1)
            loss = F.binary_cross_entropy_with_logits(
                torch.cat([pos_logit, neg_logit]), torch.cat([torch.ones_like(pos_logit), torch.zeros_like(neg_logit)])
            ) * 2  # sum of the two terms, averaged over positions
        return ObjectiveOutput(loss, {"next_item": float(loss.detach())}, n=int(targets.numel()))


def trim_pair(seq: torch.Tensor, fresh: torch.Tensor, keep_min: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the leading all-padding columns of seq (and the same columns of fresh)."""
    nonzero = (seq != 0).any(dim=0).nonzero()
    first = int(nonzero[0]) if len(nonzero) else seq.shape[1] - keep_min
    first = min(first, seq.shape[1] - keep_min)
    return seq[:, first:], fresh[:, first:]
