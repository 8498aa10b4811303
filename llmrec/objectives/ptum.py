"""ptum: PTUM's two self-supervision tasks (Wu et al., Findings of EMNLP 2020): masked behaviour prediction (MBP)
plus next-K behaviours prediction (NBP), both predicted from a pooled user vector rather than a position.

    u   = AttnPool(encoder(x̃))              x̃: the sequence with a random subset Δ masked
    u'  = AttnPool(encoder(x_{1..L−K}))      the sequence without its last K items
    L   = − Σ_{i∈Δ} log softmax(W_m u · e)_{x_i}  −  λ Σ_{k=1..K} log softmax(W_k u' · e)_{x_{L−K+k}}

AttnPool is additive attention α_t ∝ exp(qᵀ tanh(V h_t + b)) over non-padding positions. Softmaxes run over all
N items (PTUM samples negatives; a full softmax is affordable at these catalogue sizes). Requires a
bidirectional encoder (PTUM's user model reads the whole sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.objectives.base import Objective, ObjectiveContext, ObjectiveOutput, SeqBatch, trim_left
from llmrec.objectives.masked_item import cloze_mask


class AttnPool(nn.Module):
    """Additive attention pooling (B, T, H) → (B, H) over positions where `keep` is True."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.query = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        score = self.query(torch.tanh(self.proj(h))).squeeze(-1)  # (B, T)
        score = score.masked_fill(~keep, float("-inf"))
        alpha = torch.softmax(score, dim=-1).nan_to_num(0.0)  # rows with no items → zeros
        return (alpha.unsqueeze(-1) * h).sum(dim=1)  # (B, H)


class PTUM(Objective):
    """Masked behaviour prediction + next-K behaviours prediction from a pooled user vector."""

    name = "ptum"
    requires = "bidirectional"

    @dataclass
    class Options:
        mask_prob: float = 0.15  # share of behaviours masked for MBP
        k_next: int = 2  # K behaviours predicted by NBP
        nbp_weight: float = 1.0  # λ

        def __post_init__(self) -> None:
            if self.k_next < 1:
                raise ValueError("k_next must be ≥ 1")

    def __init__(self, model: nn.Module, options=None, context: ObjectiveContext | None = None) -> None:
        super().__init__(model, options, context)
        H = model.hidden
        self.pool = AttnPool(H)
        self.mbp_head = nn.Linear(H, H)
        self.nbp_heads = nn.ModuleList(nn.Linear(H, H) for _ in range(self.options.k_next))

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        T, K = self.model.max_len, self.options.k_next
        # MBP: mask behaviours, predict each masked one from the pooled vector of the masked sequence
        seq = trim_left(batch.seq[:, -T:])  # (B, T')
        masked = cloze_mask(seq, self.options.mask_prob, 0.0, batch.rng)
        inp = seq.masked_fill(masked, self.model.mask_token)
        u = self.pool(self.model(inp), inp != 0)  # (B, H)
        rows, _ = masked.nonzero(as_tuple=True)
        mbp = F.cross_entropy(self.model.item_logits(self.mbp_head(u)[rows]), seq[masked] - 1)
        # NBP: the sequence without its last K items predicts each of them
        prefix = trim_left(batch.seq[:, :-K][:, -T:])  # (B, T'')
        future = batch.seq[:, -K:]  # (B, K)
        has = (prefix != 0).any(dim=1)
        u2 = self.pool(self.model(prefix), prefix != 0)  # (B, H)
        logits = torch.stack([self.model.item_logits(head(u2)) for head in self.nbp_heads], dim=1)  # (B, K, N)
        ok = (future > 0) & has[:, None]
        nbp = F.cross_entropy(logits[ok], future[ok] - 1) if ok.any() else logits.sum() * 0.0
        loss = mbp + self.options.nbp_weight * nbp
        return ObjectiveOutput(loss, {"mbp": float(mbp.detach()), "nbp": float(nbp.detach())}, n=int(seq.shape[0]))
