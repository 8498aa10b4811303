"""Sequence augmentations for contrastive objectives, vectorised over a left-padded batch (B, T).

Each function takes item ids (0 = padding, most recent last) and a `torch.Generator`, and returns a new
left-padded (B, T) batch; a row's valid items are its last `len` positions. Ratios follow CL4SRec / CoSeRec:
a fraction of the row's length, at least one item where the operation needs one.

- crop (CL4SRec): a random contiguous sub-sequence of ⌊η·len⌋ items (≥ 1).
- mask (CL4SRec): ⌊γ·len⌋ random items replaced by [MASK].
- reorder (CL4SRec): a random contiguous block of ⌊β·len⌋ items shuffled.
- substitute (CoSeRec): max(⌊ρ·len⌋, 1) random items replaced by a correlated item (the authors'
  `max(int(rate * len), 1)`).
- insert (CoSeRec): a correlated item inserted before max(⌊ρ·len⌋, 1) random items (the oldest items fall off
  at T).
`correlated` is an (N+2, K) table of the K items most correlated with each item (see `coserec.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def lengths(seq: torch.Tensor) -> torch.Tensor:
    return (seq != 0).sum(dim=1)  # (B,)


def _pick(seq: torch.Tensor, count: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """(B, T) bool: `count[b]` distinct valid positions of row b, uniformly at random."""
    keys = torch.rand(seq.shape, generator=rng)
    keys = keys.masked_fill(seq == 0, 2.0)  # padding sorts last
    rank = keys.argsort(dim=1).argsort(dim=1)  # (B, T) rank of each position's key
    return rank < count[:, None]


def crop(seq: torch.Tensor, ratio: float, rng: torch.Generator) -> torch.Tensor:
    B, T = seq.shape
    n = lengths(seq)
    c = torch.clamp((ratio * n).floor().long(), min=1)
    c = torch.minimum(c, n)
    start = (torch.rand(B, generator=rng) * (n - c + 1)).floor().long()  # in [0, n - c]
    j = torch.arange(T)[None, :]  # (1, T) output positions
    src = (T - n)[:, None] + start[:, None] + (j - (T - c)[:, None])  # source column of output j
    keep = j >= (T - c)[:, None]
    out = seq.gather(1, src.clamp(0, T - 1))
    return torch.where(keep & (n[:, None] > 0), out, torch.zeros_like(out))


def mask(seq: torch.Tensor, ratio: float, mask_token: int, rng: torch.Generator) -> torch.Tensor:
    k = (ratio * lengths(seq)).floor().long()
    chosen = _pick(seq, k, rng)
    return seq.masked_fill(chosen, mask_token)


def reorder(seq: torch.Tensor, ratio: float, rng: torch.Generator) -> torch.Tensor:
    B, T = seq.shape
    n = lengths(seq)
    r = torch.minimum((ratio * n).floor().long(), n)
    start = (T - n) + (torch.rand(B, generator=rng) * (n - r + 1)).floor().long()  # absolute block start
    j = torch.arange(T)[None, :].float()
    inside = (j >= start[:, None]) & (j < (start + r)[:, None])
    keys = torch.where(inside, start[:, None] + torch.rand(B, T, generator=rng) * 0.999, j)  # shuffle inside
    return seq.gather(1, keys.argsort(dim=1, stable=True))


def _count_at_least_one(seq: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B,) max(⌊ratio·len⌋, 1), at most len: CoSeRec's count of items to substitute / insert before."""
    n = lengths(seq)
    return torch.minimum(torch.clamp((ratio * n).floor().long(), min=1), n)


def substitute(seq: torch.Tensor, ratio: float, correlated: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    k = _count_at_least_one(seq, ratio)
    chosen = _pick(seq, k, rng)
    choice = torch.randint(0, correlated.shape[1], seq.shape, generator=rng)
    repl = correlated[seq, choice]  # (B, T)
    return torch.where(chosen & (repl != 0), repl, seq)


def insert(seq: torch.Tensor, ratio: float, correlated: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    B, T = seq.shape
    k = _count_at_least_one(seq, ratio)
    choice = torch.randint(0, correlated.shape[1], seq.shape, generator=rng)
    new = correlated[seq, choice]  # (B, T) the item inserted before each position
    chosen = _pick(seq, k, rng) & (new != 0)
    # distance from the right end after insertion: own distance + insertions to its right
    after = chosen.flip(1).long().cumsum(1).flip(1) - chosen.long()  # insertions at positions > j
    dist = (T - 1 - torch.arange(T))[None, :] + after  # (B, T)
    W = 2 * T
    out = torch.zeros(B, W, dtype=seq.dtype)
    rows = torch.arange(B)[:, None].expand(B, T)
    valid = seq != 0
    out[rows[valid], (W - 1 - dist)[valid]] = seq[valid]
    ins = valid & chosen
    out[rows[ins], (W - 2 - dist)[ins]] = new[ins]
    return out[:, -T:]


def random_augment(
    seq: torch.Tensor,
    ops: Sequence[str],
    rng: torch.Generator,
    *,
    crop_ratio: float = 0.6,
    mask_ratio: float = 0.3,
    reorder_ratio: float = 0.6,
    substitute_ratio: float = 0.3,
    insert_ratio: float = 0.3,
    mask_token: int = 0,
    correlated: torch.Tensor | None = None,
    short_ops: Sequence[str] | None = None,
    short_len: int = 0,
) -> torch.Tensor:
    """Each row gets one operation drawn uniformly from `ops` (rows of length ≤ short_len from `short_ops`,
    CoSeRec's rule for short sequences). Every operation is computed for the whole batch, then selected per row."""
    B = seq.shape[0]
    results = {}
    names = list(dict.fromkeys(list(ops) + list(short_ops or [])))
    for name in names:
        if name == "crop":
            results[name] = crop(seq, crop_ratio, rng)
        elif name == "mask":
            results[name] = mask(seq, mask_ratio, mask_token, rng)
        elif name == "reorder":
            results[name] = reorder(seq, reorder_ratio, rng)
        elif name == "substitute":
            assert correlated is not None, "substitute needs an item correlation table"
            results[name] = substitute(seq, substitute_ratio, correlated, rng)
        elif name == "insert":
            assert correlated is not None, "insert needs an item correlation table"
            results[name] = insert(seq, insert_ratio, correlated, rng)
        else:
            raise ValueError(f"unknown augmentation {name!r}; known: crop, mask, reorder, substitute, insert")
    out = seq.clone()
    pick = torch.randint(0, len(ops), (B,), generator=rng)
    for i, name in enumerate(ops):
        out = torch.where((pick == i)[:, None], results[name], out)
    if short_ops and short_len > 0:
        short = lengths(seq) <= short_len
        pick_s = torch.randint(0, len(short_ops), (B,), generator=rng)
        for i, name in enumerate(short_ops):
            out = torch.where((short & (pick_s == i))[:, None], results[name], out)
    return out


OPS = ("crop", "mask", "reorder", "substitute", "insert")
