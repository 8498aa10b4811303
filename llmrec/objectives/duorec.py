"""duorec: model-level augmentation plus supervised positives (Qiu et al., WSDM 2022, DuoRec).

Two views of a user come from the encoder itself: two forward passes with different dropout masks (as
unsupervised SimCSE). The second view is, where the training set holds one, ANOTHER sequence with the same
next item (a supervised positive, as supervised SimCSE): sampled uniformly from every training prefix of
another user whose next item is the same (`SameTargetIndex`: next item → positions in the training part,
built once), not only from the batch — a batch rarely holds one. A row with no such prefix anywhere keeps its
own sequence (a second dropout pass). With z_i = encode(s_i) and z⁺_i = encode(s⁺_i), next(s⁺_i) = next(s_i):

    L = − Σ_i log( exp(sim(z_i, z⁺_i)/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ) )     (NT-Xent, both directions)

Sequences sharing the next item (or the user) are not each other's negatives. `mode: us` uses dropout views
only, `su` only supervised positives (rows without one are dropped), `us_x` (DuoRec's default) both as above.
The sequence is a window without its last item; that item is its "next item". The share of rows that got a
supervised positive is logged as `positive_share`. Works with any encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from llmrec.objectives.base import Objective, ObjectiveContext, ObjectiveOutput, SeqBatch, info_nce, trim_left
from llmrec.types import Split, _ranges, pad_left


class SameTargetIndex:
    """Every training prefix of `split`, grouped by its next item: for item t, the positions p (flat indices
    into `split.items`) whose item is t and that have at least one earlier item of the same user's training
    part. The prefix of p is the (up to) max_len items before it."""

    def __init__(self, split: Split) -> None:
        users = np.arange(split.n_users + 1, dtype=np.int64)
        starts, ends = split.history_bounds(users, "train")
        owner = np.repeat(users, np.maximum(ends - starts - 1, 0))
        pos = _ranges(starts + 1, ends)  # (P,) positions with ≥ 1 item before them
        order = np.argsort(split.items[pos], kind="stable")
        self.pos, self.owner = pos[order], owner[order]
        self.user_start = split.indptr[:-1]
        self.ptr = np.searchsorted(split.items[self.pos], np.arange(split.n_items + 2))  # (N+2,) CSR by item
        self.items = split.items

    def sample(self, target: torch.Tensor, users: torch.Tensor, rng: torch.Generator,
               rounds: int = 8) -> torch.Tensor:
        """(B,) a uniformly drawn position whose next item is target[b] and whose user is not users[b], or -1
        where there is none (a draw that hits the row's own user is redrawn up to `rounds` times)."""
        t = target.numpy()
        lo, n = self.ptr[t], self.ptr[t + 1] - self.ptr[t]  # (B,)
        out = np.full(len(t), -1, dtype=np.int64)
        todo = n > 0
        for _ in range(rounds):
            if not todo.any():
                break
            r = (torch.rand(len(t), generator=rng).numpy() * np.maximum(n, 1)).astype(np.int64)
            k = lo + np.minimum(r, np.maximum(n - 1, 0))
            ok = todo & (self.owner[np.minimum(k, len(self.owner) - 1)] != users.numpy()) if len(self.owner) else todo & False
            out[ok] = self.pos[k[ok]]
            todo &= ~ok
        return torch.from_numpy(out)

    def prefixes(self, positions: torch.Tensor, owners: torch.Tensor, max_len: int) -> torch.Tensor:
        """(B, max_len) left-padded: the items of the user's sequence before each position."""
        p = positions.numpy()
        start = np.maximum(self.user_start[owners.numpy()], p - max_len)
        return torch.from_numpy(pad_left(self.items, start, p, max_len))


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

    def __init__(self, model, options=None, context: ObjectiveContext | None = None) -> None:
        super().__init__(model, options, context)
        self.index: SameTargetIndex | None = None
        if self.options.mode != "us":
            if self.context.split is None:
                raise ValueError("duorec's supervised positives need the training split (mode us does not)")
            self.index = SameTargetIndex(self.context.split)

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        T = self.model.max_len
        target = batch.seq[:, -1]  # (B,)
        seq = batch.seq[:, :-1][:, -T:]
        ok = (target > 0) & (seq != 0).any(dim=1)
        seq, target, users = seq[ok], target[ok], batch.users[ok]
        B = len(target)
        has = torch.zeros(B, dtype=torch.bool)
        partner_seq = seq
        if self.index is not None and B:
            where = self.index.sample(target, users, batch.rng)  # (B,) position or -1
            has = where >= 0
            owners = torch.from_numpy(np.searchsorted(self.context.split.indptr, where.clamp(min=0).numpy(),
                                                      side="right") - 1)
            other = self.index.prefixes(where.clamp(min=0), owners, T)  # (B, T)
            partner_seq = torch.where(has[:, None], other, seq)
        if self.options.mode == "su":
            seq, target, users, partner_seq, has = seq[has], target[has], users[has], partner_seq[has], has[has]
        share = float(has.float().mean()) if len(has) else 0.0
        if len(target) < 2:
            z = self.model.encode(trim_left(seq) if len(seq) else batch.seq[:1, 1:])
            return ObjectiveOutput(z.sum() * 0.0, {"duorec": 0.0, "positive_share": share}, n=0)
        z1 = self.model.encode(trim_left(seq))  # (B', H), dropout mask 1
        z2 = self.model.encode(trim_left(partner_seq))  # (B', H), dropout mask 2 (or another sequence)
        block = (target[:, None] == target[None, :]) | (users[:, None] == users[None, :])
        loss = info_nce(z1, z2, self.options.temperature, self.options.similarity, same=block)
        return ObjectiveOutput(loss, {"duorec": float(loss.detach()), "positive_share": share},
                               n=int(len(target)))
