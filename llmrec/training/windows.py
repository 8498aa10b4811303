"""Training windows: every user's training sequence cut into left-padded windows of max_len+1 items, built once.

A window holds L = max_len + 1 items so a causal model reads the first max_len and predicts the last max_len
(every position is a target). Sequences longer than L are covered by several windows whose ends step back by
`stride`; each item is a target in exactly one window — the one where it has the most context — which
`fresh` marks. So no interaction of the training part is wasted (SASRec's own code keeps only the last
max_len items of each user) while each target keeps at least L - stride items of context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmrec.types import Split, pad_left


@dataclass
class Windows:
    """seq (W, L) int64 left-padded item ids; fresh (W, L) bool: the positions whose item is a training target
    in this window; users (W,) the owner of each window."""

    seq: torch.Tensor
    fresh: torch.Tensor
    users: torch.Tensor

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def select(self, idx: torch.Tensor) -> Windows:
        return Windows(self.seq[idx], self.fresh[idx], self.users[idx])


def make_windows(split: Split, max_len: int, stride: int | None = None, phase: str = "train") -> Windows:
    """Windows over `split`'s training part (`phase="train"`: s[:-2]); stride defaults to max_len // 2,
    `stride=0` keeps only the most recent window of each user."""
    L = max_len + 1
    S = max(1, max_len // 2) if stride is None else stride
    users = np.arange(1, split.n_users + 1, dtype=np.int64)
    starts, ends = split.history_bounds(users, phase)  # type: ignore[arg-type]
    n = ends - starts
    keep = n >= 1
    users, starts, n = users[keep], starts[keep], n[keep]
    if S == 0:
        count = np.ones_like(n)
    else:
        count = 1 + np.ceil(np.maximum(n - L, 0) / S).astype(np.int64)  # windows whose start is > 0, plus one
    owner = np.repeat(np.arange(len(users)), count)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)  # window index within its user
    end = n[owner] - k * max(S, 1)  # exclusive, relative to the user's first item
    start = np.maximum(end - L, 0)
    seq = pad_left(split.items, starts[owner] + start, starts[owner] + end, L)  # (W, L)
    pos = np.arange(L)[None, :]  # (1, L)
    length = (end - start)[:, None]
    valid = pos >= L - length
    if S == 0:
        fresh = valid
    else:
        first = (start == 0)[:, None]  # the earliest window: every item is fresh
        fresh = valid & (first | (pos >= L - S))
    return Windows(
        torch.from_numpy(seq),
        torch.from_numpy(np.ascontiguousarray(fresh)),
        torch.from_numpy(users[owner]),
    )


def epoch_batches(
    windows: Windows, batch_size: int, rng: torch.Generator, bucket: int = 32
) -> list[torch.Tensor]:
    """Index tensors of one epoch's batches: a random permutation, cut into groups of `bucket` batches whose
    windows are sorted by length inside the group, then the batches shuffled. Batches of similar lengths lose
    little to padding (Amazon sequences are mostly short); `bucket=1` gives plain random batches."""
    W = len(windows)
    perm = torch.randperm(W, generator=rng)
    if bucket > 1:
        length = (windows.seq != 0).sum(dim=1)[perm]
        group = batch_size * bucket
        parts = []
        for s in range(0, W, group):
            chunk = perm[s : s + group]
            parts.append(chunk[length[s : s + group].argsort(stable=True)])
        perm = torch.cat(parts) if parts else perm
    batches = list(perm.split(batch_size))
    order = torch.randperm(len(batches), generator=rng)
    return [batches[i] for i in order]
