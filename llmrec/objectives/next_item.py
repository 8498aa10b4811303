"""next_item: next-behaviour prediction (GPT-style), the objective SASRec is trained and fine-tuned with.

    L = − Σ_u Σ_t log p(x_{t+1} | x_≤t),   p(i | x_≤t) = softmax_i( h_t · e_i )  over all N items

(full-softmax cross-entropy; `loss: bce` is the SASRec paper's sampled binary cross-entropy with one uniform
negative per position: − log σ(h_t·e_{x_{t+1}}) − log(1 − σ(h_t·e_neg))). Every position of every window is a
target once (`batch.fresh`), and needs at least one item before it. Requires a causal encoder: a bidirectional
one would see the answer (use `masked_item` for BERT4Rec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from llmrec.objectives.base import Objective, ObjectiveOutput, SeqBatch


class NextItem(Objective):
    """Next-item prediction at every position (full-softmax CE, or sampled BCE)."""

    name = "next_item"
    requires = "causal"

    @dataclass
    class Options:
        loss: Literal["ce", "bce"] = "ce"

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        seq, fresh = trim_pair(batch.seq, batch.fresh)  # (B, L')
        inp, tgt = seq[:, :-1], seq[:, 1:]  # (B, T'), (B, T')
        valid = (tgt > 0) & (inp > 0) & fresh[:, 1:]
        h = self.model(inp)[valid]  # (M, H)
        targets = tgt[valid]  # (M,)
        if self.options.loss == "ce":
            loss = F.cross_entropy(self.model.item_logits(h), targets - 1)
        else:
            emb = self.model.item_embeddings()  # (N, H)
            neg = torch.randint(1, self.model.n_items + 1, targets.shape, generator=batch.rng)
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
