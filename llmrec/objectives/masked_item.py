"""masked_item: masked-behaviour (Cloze) prediction, BERT4Rec's objective.

Mask a random subset Δ of a sequence's positions (each with probability ρ; with probability `last_prob` a row
instead masks only its most recent item, the situation at inference), replace them by [MASK], and predict:

    L = − Σ_u Σ_{i∈Δ} log p(x_i | x̃),   p(· | x̃) = softmax over all N items of the hidden state at i

A row where no position was drawn masks its most recent item. Requires a bidirectional encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmrec.objectives.base import Objective, ObjectiveOutput, SeqBatch
from llmrec.objectives.next_item import trim_pair


def cloze_mask(seq: torch.Tensor, prob: float, last_prob: float, rng: torch.Generator) -> torch.Tensor:
    """(B, T) bool positions to mask: Bernoulli(prob) over items, or only the last item with prob last_prob."""
    valid = seq != 0
    chosen = (torch.rand(seq.shape, generator=rng) < prob) & valid
    last_only = torch.rand(seq.shape[0], generator=rng) < last_prob
    last = torch.zeros_like(chosen)
    last[:, -1] = valid[:, -1]
    chosen = torch.where(last_only[:, None], last, chosen)
    empty = ~chosen.any(dim=1)
    return torch.where(empty[:, None], last, chosen)


class MaskedItem(Objective):
    """Cloze: predict masked items from both sides (full-softmax CE)."""

    name = "masked_item"
    requires = "bidirectional"
    supervised = True

    @dataclass
    class Options:
        mask_prob: float = 0.2  # ρ (BERT4Rec: 0.2 on ML, 0.6 on Beauty)
        last_prob: float = 0.1  # share of rows masking only their last item

        def __post_init__(self) -> None:
            if not (0.0 < self.mask_prob <= 1.0 and 0.0 <= self.last_prob <= 1.0):
                raise ValueError("mask_prob must be in (0, 1] and last_prob in [0, 1]")

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        T = self.model.max_len
        seq, fresh = trim_pair(batch.seq[:, -T:], batch.fresh[:, -T:], keep_min=1)  # (B, T')
        masked = cloze_mask(seq, self.options.mask_prob, self.options.last_prob, batch.rng)
        inp = seq.masked_fill(masked, self.model.mask_token)
        target = masked & fresh
        h = self.model(inp)[target]  # (M, H)
        loss = F.cross_entropy(self.model.item_logits(h), seq[target] - 1)
        return ObjectiveOutput(loss, {"masked_item": float(loss.detach())}, n=int(target.sum()))
