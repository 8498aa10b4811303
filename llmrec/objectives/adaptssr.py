"""adaptssr: augmentation-adaptive self-supervised ranking (Yu et al., NeurIPS 2023, AdaptSSR).

Instead of "an augmented view is a positive", rank similarities:
sim(anchor, implicit view) ≥ sim(anchor, other explicit view) ≥ sim(anchor, other users).
As the authors' code does it (yflyl613/AdaptSSR, Code/AdaptSSR/{dataset,model}.py): each user yields TWO
explicitly augmented sequences s¹, s², each by one augmentation drawn uniformly from {crop, reorder, mask}
(mask only for sequences longer than one item); each goes through the encoder twice (two dropout masks — the
implicit augmentation), giving a¹, p¹ (from s¹) and a², p² (from s²), L2-normalised so sim is the cosine.
For the anchor a¹: positive p¹, semi-positives {a², p²}, negatives every OTHER user's four vectors in the batch.
With the multiple pairwise ranking loss on the hardest pairs

    d_pos = sim(a¹, p¹) − max(sim(a¹, a²), sim(a¹, p²))
    d_neg = min(sim(a¹, a²), sim(a¹, p²)) − max_{w ∈ neg} sim(a¹, w)
    L¹ = − mean_i log σ( λ¹·d_pos + (1 − λ¹)·d_neg ),   λ¹ = 1 − mean_{i, v ∈ semi} sim(a¹_i, v_i)  (no gradient)

λ is one scalar per batch (the authors' `coef = 1 - sim_anchor_semi.detach().mean()`): when the augmentations
kept the users' meaning (high semi-positive similarity) the loss mostly asks semi ≻ negatives, when they broke
it mostly pos ≻ semi. The same for the anchor a² with the roles of the two sequences swapped; L = (L¹ + L²)/2.
Windows of the same user are not each other's negatives. `scale` multiplies the bracket (1 = the paper).
Any encoder. Default ratios are the authors' (crop 0.4, mask 0.6, reorder 0.6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmrec.objectives import augment
from llmrec.objectives.base import Objective, ObjectiveOutput, SeqBatch, sequence_input


def anchor_loss(a: torch.Tensor, p: torch.Tensor, sa: torch.Tensor, sp: torch.Tensor, negatives: torch.Tensor,
                not_neg: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One anchor's loss and λ (a scalar) from L2-normalised (B, H) views.

    a: the anchors; p: their implicit views (positive); sa, sp: the other sequence's two views (semi-positives);
    negatives: (V, H) every view in the batch; not_neg: (B, V) bool, views that are no negative of row b (its
    own user's)."""
    s_pos = (a * p).sum(-1)  # (B,)
    semi = torch.stack([(a * sa).sum(-1), (a * sp).sum(-1)], dim=1)  # (B, 2)
    s_neg = (a @ negatives.T).masked_fill(not_neg, float("-inf")).max(dim=1).values  # (B,)
    s_neg = torch.where(torch.isinf(s_neg), torch.full_like(s_neg, -1.0), s_neg)  # no other user: cos ≥ -1
    lam = 1.0 - semi.detach().mean()  # one scalar for the batch
    d_pos = s_pos - semi.max(dim=1).values
    d_neg = semi.min(dim=1).values - s_neg
    return -F.logsigmoid(scale * (lam * d_pos + (1 - lam) * d_neg)).mean(), lam


def adaptssr_loss(a1: torch.Tensor, p1: torch.Tensor, a2: torch.Tensor, p2: torch.Tensor,
                  users: torch.Tensor | None = None, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(L¹ + L²)/2 and (λ¹, λ²) from four (B, H) views: a1, p1 = two passes over s¹; a2, p2 = over s²."""
    B = a1.shape[0]
    a1, p1, a2, p2 = (F.normalize(t, dim=-1) for t in (a1, p1, a2, p2))
    views = torch.cat([a1, p1, a2, p2], dim=0)  # (4B, H)
    owner = torch.arange(B).repeat(4)  # (4B,) the row each view belongs to
    own = owner[None, :] == torch.arange(B)[:, None]  # (B, 4B)
    if users is not None:
        own = own | (users[owner][None, :] == users[:, None])
    l1, lam1 = anchor_loss(a1, p1, a2, p2, views, own, scale)
    l2, lam2 = anchor_loss(a2, p2, a1, p1, views, own, scale)
    return (l1 + l2) / 2, torch.stack([lam1, lam2])


class AdaptSSR(Objective):
    """Self-supervised ranking implicit ≻ other explicit view ≻ other users, with the adaptive weight λ."""

    name = "adaptssr"
    requires = "any"

    @dataclass
    class Options:
        crop_ratio: float = 0.4
        mask_ratio: float = 0.6
        reorder_ratio: float = 0.6
        scale: float = 1.0

        def __post_init__(self) -> None:
            if not (0 < self.crop_ratio <= 1 and 0 <= self.mask_ratio < 1 and 0 <= self.reorder_ratio <= 1):
                raise ValueError("crop_ratio must be in (0, 1], mask_ratio in [0, 1), reorder_ratio in [0, 1]")

    def augment(self, seq: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """One explicit augmentation per row, crop / reorder / mask uniformly. The authors never mask a one-item
        sequence; here mask may be drawn for it but masks ⌊γ·1⌋ = 0 items (γ < 1), as crop and reorder also
        leave it unchanged, so the views are the same."""
        o = self.options
        return augment.random_augment(seq, ("crop", "reorder", "mask"), rng, crop_ratio=o.crop_ratio,
                                      mask_ratio=o.mask_ratio, reorder_ratio=o.reorder_ratio,
                                      mask_token=self.model.mask_token)

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        seq = sequence_input(batch, self.model.max_len)  # (B, T)
        s1, s2 = self.augment(seq, batch.rng), self.augment(seq, batch.rng)
        B = seq.shape[0]
        # one pass over [s¹; s¹; s²; s²]: each copy gets its own dropout mask
        a1, p1, a2, p2 = self.model.encode(torch.cat([s1, s1, s2, s2], dim=0)).split(B)  # 4 × (B, H)
        loss, lam = adaptssr_loss(a1, p1, a2, p2, batch.users, self.options.scale)
        return ObjectiveOutput(loss, {"adaptssr": float(loss.detach()), "lambda": float(lam.mean())}, n=B)
