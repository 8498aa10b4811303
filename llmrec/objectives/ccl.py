"""ccl: contrastive learning with mask-and-fill augmentation and a curriculum (Bian et al., CIKM 2021, CCL).

Two views of each sequence are made by masking a set M of positions and filling each with an item sampled
from a masked-item model, i ~ P(· | s_{−k}): a bidirectional encoder reads the masked sequence and predicts
each [MASK]; a causal encoder predicts position k from the items before it. The filler is the encoder being
trained (no gradient through the fill), so the views grow more plausible as it learns. The mask ratio follows a
curriculum from easy to hard, linear in the stage's epochs: ratio_start → ratio_end. The two views' user
vectors are pulled together with NT-Xent against the batch (as in `cl4srec`):

    L = − Σ_i log( exp(sim(z'_i, z''_i)/τ) / Σ_{k≠i} exp(sim(z'_i, z_k)/τ) )

Works with any encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from llmrec.objectives import augment
from llmrec.objectives.base import Objective, ObjectiveOutput, SeqBatch, info_nce, sequence_input


class CCL(Objective):
    """Mask-and-fill views (filled by the encoder's own masked-item predictions) + curriculum + InfoNCE."""

    name = "ccl"
    requires = "any"

    @dataclass
    class Options:
        ratio_start: float = 0.1  # share of items masked-and-filled in the first epoch
        ratio_end: float = 0.5  # ... and in the last
        fill_temperature: float = 1.0  # sampling temperature of the filler
        temperature: float = 1.0  # τ of NT-Xent
        similarity: Literal["dot", "cos"] = "dot"

    epoch_ratio: float = 0.1

    def on_epoch_start(self, epoch: int) -> None:
        o, E = self.options, max(1, self.context.epochs - 1)
        self.epoch_ratio = o.ratio_start + (o.ratio_end - o.ratio_start) * min(1.0, epoch / E)

    @torch.no_grad()
    def fill(self, seq: torch.Tensor, ratio: float, rng: torch.Generator) -> torch.Tensor:
        """(B, T) → (B, T) with ⌈ratio·len⌉ positions replaced by items sampled from the encoder."""
        m = self.model
        n = augment.lengths(seq)
        k = torch.minimum(torch.clamp((ratio * n).ceil().long(), min=1), n)
        chosen = augment._pick(seq, k, rng)
        was_training = m.training
        m.eval()
        try:
            if m.bidirectional:
                h = m(seq.masked_fill(chosen, m.mask_token))[chosen]  # (M, H)
            else:
                # position k is predicted by the hidden state at k-1; the oldest item has no context: keep it
                first = torch.zeros_like(chosen)
                first[torch.arange(len(seq)), seq.shape[1] - n.clamp(min=1)] = True
                chosen = chosen & ~first
                prev = torch.zeros_like(chosen)
                prev[:, :-1] = chosen[:, 1:]
                h = m(seq)[prev]  # (M, H), same row-major order as chosen
            logits = m.item_logits(h) / self.options.fill_temperature  # (M, N)
        finally:
            m.train(was_training)
        if logits.shape[0] == 0:
            return seq
        sampled = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=rng).squeeze(1) + 1
        out = seq.clone()
        out[chosen] = sampled
        return out

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        seq = sequence_input(batch, self.model.max_len)  # (B, T)
        v1 = self.fill(seq, self.epoch_ratio, batch.rng)
        v2 = self.fill(seq, self.epoch_ratio, batch.rng)
        z1, z2 = self.model.encode(v1), self.model.encode(v2)
        same_user = batch.users[:, None] == batch.users[None, :]
        loss = info_nce(z1, z2, self.options.temperature, self.options.similarity, same=same_user)
        return ObjectiveOutput(loss, {"ccl": float(loss.detach()), "mask_ratio": self.epoch_ratio}, n=int(seq.shape[0]))
