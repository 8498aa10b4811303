"""Baseline scorers: random, popularity, item-kNN (cosine co-occurrence) and BPR matrix factorisation.

All fit on the training part of the split (each user's sequence minus the validation and test items) and score
with the history in the batch, so the same fitted scorer serves the validation and the test phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from llmrec.config import from_dict
from llmrec.errors import ConfigError
from llmrec.scorers.base import SCORERS, ScorerContext
from llmrec.types import Dataset, ScoreBatch, Split


def _gather(full: torch.Tensor, batch: ScoreBatch) -> torch.Tensor:
    """(B, N+1) full scores → (B, C) for the batch's candidates (or unchanged for full ranking)."""
    return full if batch.candidates is None else full.gather(1, batch.candidates)


class RandomScorer:
    """Uniform random scores, a deterministic hash of (seed, user, item): independent of batching."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.n_items = 0

    def fit(self, dataset: Dataset, split: Split) -> None:
        self.n_items = dataset.n_items

    def score(self, batch: ScoreBatch) -> torch.Tensor:
        items = (
            torch.arange(self.n_items + 1)[None, :].expand(len(batch.users), -1)
            if batch.candidates is None
            else batch.candidates
        )
        x = batch.users[:, None].to(torch.int64) * 0x9E3779B1 + items.to(torch.int64) * 0x85EBCA77
        x = x + self.seed * 0xC2B2AE3D
        for _ in range(3):  # splitmix-style mixing in 62-bit arithmetic (stays positive, no overflow traps)
            x = (x ^ (x >> 31)) & 0x3FFFFFFFFFFFFFFF
            x = (x * 0x7FB5D329728EA185) & 0x3FFFFFFFFFFFFFFF
        return (x & 0xFFFFFF).to(torch.float32) / float(0xFFFFFF)


class Popularity:
    """Number of training interactions of each item (the reference Scorer implementation)."""

    name = "pop"

    def fit(self, dataset: Dataset, split: Split) -> None:
        counts = np.bincount(split.items[_train_positions(split)], minlength=dataset.n_items + 1)
        self.counts = torch.from_numpy(counts.astype(np.float32))  # (N+1,)

    def score(self, batch: ScoreBatch) -> torch.Tensor:
        full = self.counts[None, :].expand(len(batch.users), -1)  # (B, N+1)
        return _gather(full, batch)


def _train_positions(split: Split) -> np.ndarray:
    from llmrec.types import _ranges

    users = np.arange(split.n_users + 1)
    s, e = split.history_bounds(users, "train")
    return _ranges(s, e)


@dataclass
class ItemKNNConfig:
    neighbours: int = 0  # keep each item's k most similar items; 0 = all
    shrink: float = 0.0  # similarity = co / (sqrt(deg_i deg_j) + shrink)


class ItemKNN:
    """Item-based CF: cosine-normalised co-occurrence sim(i,j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|) over the
    training histories; a user's score for j = Σ_{h in history} sim(h, j)."""

    name = "itemknn"

    def __init__(self, cfg: ItemKNNConfig | None = None) -> None:
        self.cfg = cfg or ItemKNNConfig()

    def fit(self, dataset: Dataset, split: Split) -> None:
        X = split.train_matrix("train")  # (U+1, N+1) binary
        co = (X.T @ X).tocsr().astype(np.float32)  # (N+1, N+1)
        co.setdiag(0)
        co.eliminate_zeros()
        deg = np.asarray(X.sum(axis=0)).ravel().astype(np.float32)  # (N+1,)
        norm = np.sqrt(deg)
        co = co.tocoo()
        vals = co.data / (norm[co.row] * norm[co.col] + self.cfg.shrink)
        S = sp.csr_matrix((vals, (co.row, co.col)), shape=co.shape)
        if self.cfg.neighbours > 0:
            S = _top_k_rows(S, self.cfg.neighbours)
        self.sim = S.tocsr()
        self.n_items = dataset.n_items

    def score(self, batch: ScoreBatch) -> torch.Tensor:
        h = batch.history.numpy()
        B = h.shape[0]
        rows = np.repeat(np.arange(B), h.shape[1])
        keep = h.ravel() > 0  # drop padding
        H = sp.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (rows[keep], h.ravel()[keep])), shape=(B, self.n_items + 1)
        )
        H.data[:] = 1.0  # repeated items count once
        full = torch.from_numpy((H @ self.sim).toarray())  # (B, N+1)
        return _gather(full, batch)


def _top_k_rows(S: sp.csr_matrix, k: int) -> sp.csr_matrix:
    S = S.tocsr()
    rows, cols, vals = [], [], []
    for r in range(S.shape[0]):
        a, b = S.indptr[r], S.indptr[r + 1]
        if b - a > k:
            keep = np.argpartition(-S.data[a:b], k - 1)[:k] + a
        else:
            keep = np.arange(a, b)
        rows.append(np.full(len(keep), r))
        cols.append(S.indices[keep])
        vals.append(S.data[keep])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=S.shape)


@dataclass
class BPRConfig:
    dim: int = 64
    epochs: int = 40
    lr: float = 0.005
    l2: float = 1e-5  # weight of the squared-norm penalty on the embeddings in the batch
    batch_size: int = 4096


class BPR:
    """BPR matrix factorisation (Rendle et al. 2009): maximise log σ(x_ui − x_uj) over (user, seen item,
    unseen item) triples, one uniformly sampled negative per training interaction per epoch."""

    name = "bpr"

    def __init__(self, cfg: BPRConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or BPRConfig()
        self.seed = seed

    def fit(self, dataset: Dataset, split: Split) -> None:
        cfg = self.cfg
        g = torch.Generator().manual_seed(self.seed)
        X = split.train_matrix("train").tocoo()
        users = torch.from_numpy(X.row.astype(np.int64))
        pos = torch.from_numpy(X.col.astype(np.int64))
        seen_keys = np.unique(X.row.astype(np.int64) * (split.n_items + 1) + X.col)  # sorted (user, item) keys
        U, N = split.n_users + 1, split.n_items + 1
        self.user_emb = torch.nn.Embedding(U, cfg.dim)
        self.item_emb = torch.nn.Embedding(N, cfg.dim)
        torch.nn.init.normal_(self.user_emb.weight, std=0.1, generator=g)
        torch.nn.init.normal_(self.item_emb.weight, std=0.1, generator=g)
        opt = torch.optim.Adam([self.user_emb.weight, self.item_emb.weight], lr=cfg.lr)
        n = len(users)
        for _ in range(cfg.epochs):
            perm = torch.randperm(n, generator=g)
            neg = torch.randint(1, N, (n,), generator=g)
            # resample negatives that the user has seen (one vectorised pass; the rare leftovers stay)
            clash = torch.from_numpy(np.isin(users.numpy() * N + neg.numpy(), seen_keys, assume_unique=False))
            neg[clash] = torch.randint(1, N, (int(clash.sum()),), generator=g)
            for s in range(0, n, cfg.batch_size):
                idx = perm[s : s + cfg.batch_size]
                u, i, j = self.user_emb(users[idx]), self.item_emb(pos[idx]), self.item_emb(neg[idx])
                x = (u * (i - j)).sum(-1)  # (b,)
                loss = -torch.nn.functional.logsigmoid(x).mean()
                loss = loss + cfg.l2 * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / len(idx)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def score(self, batch: ScoreBatch) -> torch.Tensor:
        u = self.user_emb.weight[batch.users]  # (B, H)
        if batch.candidates is None:
            return u @ self.item_emb.weight.T  # (B, H) @ (H, N+1) -> (B, N+1)
        return torch.einsum("bh,bch->bc", u, self.item_emb.weight[batch.candidates])


def _no_argument(name: str, arg: str | None) -> None:
    if arg is not None:
        raise ConfigError(f"scorer {name!r} takes no argument, got --scorer {name}:{arg} (use --scorer {name}; "
                          f"options go in --set options.KEY=VALUE)")


def _random(arg: str | None, ctx: ScorerContext) -> RandomScorer:
    _no_argument("random", arg)
    return RandomScorer(ctx.seed)


def _pop(arg: str | None, ctx: ScorerContext) -> Popularity:
    _no_argument("pop", arg)
    return Popularity()


def _itemknn(arg: str | None, ctx: ScorerContext) -> ItemKNN:
    _no_argument("itemknn", arg)
    return ItemKNN(from_dict(ItemKNNConfig, ctx.options, "scorer"))


def _bpr(arg: str | None, ctx: ScorerContext) -> BPR:
    _no_argument("bpr", arg)
    return BPR(from_dict(BPRConfig, ctx.options, "scorer"), ctx.seed)


SCORERS.add("random", _random, "uniform random scores (seeded)")
SCORERS.add("pop", _pop, "most popular items in training")
SCORERS.add("itemknn", _itemknn, "item-kNN: cosine-normalised co-occurrence")
SCORERS.add("bpr", _bpr, "BPR matrix factorisation")
