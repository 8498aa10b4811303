"""duorec: model-level augmentation plus supervised positives (Qiu et al., WSDM 2022, DuoRec).

Two views of a user come from the encoder itself: two forward passes with different dropout masks (as
unsupervised SimCSE). The second view is, when the batch holds one, another sequence with the same next item
(a supervised positive, as supervised SimCSE); otherwise the same sequence again. With z_i = encode(s_i) and
z⁺_i = encode(s_{j(i)}), next(s_{j(i)}) = next(s_i):

    L = − Σ_i log( exp(sim(z_i, z⁺_i)/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ) )     (NT-Xent, both directions)

Sequences sharing the next item (or the user) are not each other's negatives. `mode: us` uses dropout views
only, `su` only supervised positives (rows without one are dropped), `us_x` (DuoRec's default) both as above.
The sequence is a window without its last item; that item is its "next item". Works with any encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from llmrec.objectives.base import Objective, ObjectiveOutput, SeqBatch, info_nce, trim_left


def same_target_partner(target: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """(B,) for each row, a random other row with the same target, or the row itself when there is none."""
    B = target.shape[0]
    same = (target[:, None] == target[None, :]) & ~torch.eye(B, dtype=torch.bool)  # (B, B)
    keys = torch.rand(B, B, generator=rng).masked_fill(~same, -1.0)
    partner = keys.argmax(dim=1)
    return torch.where(same.any(dim=1), partner, torch.arange(B))


class DuoRec(Objective):
    """Dropout views + same-next-item positives + InfoNCE."""

    name = "duorec"
    requires = "any"

    @dataclass
    class Options:
        mode: Literal["us", "su", "us_x"] = "us_x"
        temperature: float = 1.0
        similarity: Literal["dot", "cos"] = "dot"

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        target = batch.seq[:, -1]  # (B,)
        seq = batch.seq[:, :-1][:, -self.model.max_len :]
        ok = (target > 0) & (seq != 0).any(dim=1)
        seq, target, users = seq[ok], target[ok], batch.users[ok]
        seq = trim_left(seq)  # (B', T)
        partner = torch.arange(len(target))
        if self.options.mode != "us":
            partner = same_target_partner(target, batch.rng)
        if self.options.mode == "su":
            has = partner != torch.arange(len(target))  # a row with a partner: its partner has one too
            new_index = has.long().cumsum(0) - 1
            seq, target, users, partner = seq[has], target[has], users[has], new_index[partner[has]]
        if len(target) < 2:
            z = self.model.encode(seq if len(seq) else batch.seq[:1, 1:])
            return ObjectiveOutput(z.sum() * 0.0, {"duorec": 0.0}, n=0)
        z1 = self.model.encode(seq)  # (B', H), dropout mask 1
        z2 = self.model.encode(seq[partner])  # (B', H), dropout mask 2 (on the partner)
        block = (target[:, None] == target[None, :]) | (users[:, None] == users[None, :])
        loss = info_nce(z1, z2, self.options.temperature, self.options.similarity, same=block)
        return ObjectiveOutput(loss, {"duorec": float(loss.detach())}, n=int(len(target)))
