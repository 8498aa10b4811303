"""adaptssr: augmentation-adaptive self-supervised ranking (Yu et al., NeurIPS 2023, AdaptSSR).

Instead of "an augmented view is a positive", rank similarities: sim(u, u⁺) ≥ sim(u, û) ≥ sim(u, u⁻).
For each user i: û_i, û⁺_i are two dropout passes over the original sequence (implicit augmentation); ũ_i, ũ⁺_i
two dropout passes over an explicitly augmented one (crop / mask / reorder); U_i⁻ every view of the other
users in the batch. With the anchor û_i and sim the cosine, the multiple pairwise ranking loss with in-batch
hard negatives is

    L_i = − log σ[ λ_i · (sim(û_i, û⁺_i) − max_{v∈{ũ_i,ũ⁺_i}} sim(û_i, v))
                 + (1 − λ_i) · (min_{v∈{ũ_i,ũ⁺_i}} sim(û_i, v) − max_{w∈U_i⁻} sim(û_i, w)) ]

with the augmentation-adaptive weight (no gradient through it)

    λ_i = 1 − ¼ Σ_{ŝ∈{û_i,û⁺_i}} Σ_{s̃∈{ũ_i,ũ⁺_i}} max(sim(ŝ, s̃), 0)

so an augmentation that kept the user's meaning (high similarity) mostly asks for ũ ≻ negatives, and one that
broke it mostly asks for û⁺ ≻ ũ. `scale` multiplies the bracket (1 = the paper's formula). Any encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmrec.objectives import augment
from llmrec.objectives.base import Objective, ObjectiveOutput, SeqBatch, sequence_input


def adaptssr_loss(u: torch.Tensor, u_pos: torch.Tensor, a: torch.Tensor, a_pos: torch.Tensor,
                  users: torch.Tensor | None = None, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss (mean over i) and λ (B,) from four (B, H) views: u=û, u_pos=û⁺, a=ũ, a_pos=ũ⁺."""
    B = u.shape[0]
    u, u_pos, a, a_pos = (F.normalize(t, dim=-1) for t in (u, u_pos, a, a_pos))
    s_pos = (u * u_pos).sum(-1)  # (B,) sim(û, û⁺)
    s_a = (u * a).sum(-1)
    s_ap = (u * a_pos).sum(-1)
    s_aug_max, s_aug_min = torch.maximum(s_a, s_ap), torch.minimum(s_a, s_ap)
    allviews = torch.cat([u, u_pos, a, a_pos], dim=0)  # (4B, H)
    s_all = u @ allviews.T  # (B, 4B)
    owner = torch.arange(B).repeat(4)  # (4B,) which user each view belongs to
    same = owner[None, :] == torch.arange(B)[:, None]  # (B, 4B)
    if users is not None:
        same = same | (users[owner][None, :] == users[:, None])
    s_neg_max = s_all.masked_fill(same, float("-inf")).max(dim=1).values  # (B,)
    s_neg_max = torch.where(torch.isinf(s_neg_max), torch.full_like(s_neg_max, -1.0), s_neg_max)
    with torch.no_grad():
        cross = [(x * y).sum(-1).clamp(min=0) for x in (u, u_pos) for y in (a, a_pos)]
        lam = 1.0 - 0.25 * torch.stack(cross).sum(0)  # (B,)
    margin = lam * (s_pos - s_aug_max) + (1 - lam) * (s_aug_min - s_neg_max)
    return -F.logsigmoid(scale * margin).mean(), lam


class AdaptSSR(Objective):
    """Self-supervised ranking û⁺ ≻ ũ ≻ u⁻ with the augmentation-adaptive weight λ."""

    name = "adaptssr"
    requires = "any"

    @dataclass
    class Options:
        crop_ratio: float = 0.6
        mask_ratio: float = 0.3
        reorder_ratio: float = 0.6
        scale: float = 1.0

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        o = self.options
        seq = sequence_input(batch, self.model.max_len)  # (B, T)
        aug = augment.random_augment(seq, ("crop", "mask", "reorder"), batch.rng, crop_ratio=o.crop_ratio,
                                     mask_ratio=o.mask_ratio, reorder_ratio=o.reorder_ratio,
                                     mask_token=self.model.mask_token)
        B = seq.shape[0]
        # one pass over [s; s; ŝ; ŝ]: each copy gets its own dropout mask
        z = self.model.encode(torch.cat([seq, seq, aug, aug], dim=0))  # (4B, H)
        u, u_pos, a, a_pos = z.split(B)
        loss, lam = adaptssr_loss(u, u_pos, a, a_pos, batch.users, o.scale)
        return ObjectiveOutput(loss, {"adaptssr": float(loss.detach()), "lambda": float(lam.mean())}, n=B)
