"""cl4srec: contrastive learning over two augmented views of each sequence (Xie et al., ICDE 2022).

Each sequence s gets two views s', s'' by an augmentation drawn per view from {crop (η), mask (γ), reorder (β)};
their user vectors z' = encode(s'), z'' = encode(s'') are pulled together against the other 2B−2 views of the
batch (NT-Xent):

    L = − Σ_i log( exp(sim(z'_i, z''_i)/τ) / Σ_{k≠i} exp(sim(z'_i, z_k)/τ) )     (both directions)

sim is the dot product (CL4SRec) or cosine. Views of the same user (several windows of one long sequence)
are not used as negatives of each other. Works with causal or bidirectional encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmrec.objectives import augment
from llmrec.objectives.base import Objective, ObjectiveOutput, SeqBatch, info_nce, sequence_input


class CL4SRec(Objective):
    """Two crop/mask/reorder views per sequence + InfoNCE."""

    name = "cl4srec"
    requires = "any"

    @dataclass
    class Options:
        crop_ratio: float = 0.6  # η
        mask_ratio: float = 0.3  # γ
        reorder_ratio: float = 0.6  # β
        temperature: float = 1.0  # τ
        similarity: Literal["dot", "cos"] = "dot"

    def views(self, seq, rng):
        o = self.options
        kw = dict(crop_ratio=o.crop_ratio, mask_ratio=o.mask_ratio, reorder_ratio=o.reorder_ratio,
                  mask_token=self.model.mask_token)
        ops = ("crop", "mask", "reorder")
        return augment.random_augment(seq, ops, rng, **kw), augment.random_augment(seq, ops, rng, **kw)

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        seq = sequence_input(batch, self.model.max_len)  # (B, T)
        v1, v2 = self.views(seq, batch.rng)
        z1, z2 = self.model.encode(v1), self.model.encode(v2)  # (B, H) each
        same_user = batch.users[:, None] == batch.users[None, :]
        loss = info_nce(z1, z2, self.options.temperature, self.options.similarity, same=same_user)
        return ObjectiveOutput(loss, {"cl4srec": float(loss.detach())}, n=int(seq.shape[0]))
