"""Contrastive objectives for tuning a text item encoder: InfoNCE with in-batch negatives, and the example
streams that feed it (next item from history, item co-occurrence, domain post-training field pairing).

`info_nce(q, k, τ, same)`: L = mean_i −log( exp(q_i·k_i/τ) / Σ_j exp(q_i·k_j/τ) ), where pairs (i, j ≠ i) with
`same[i, j]` (the same item or the same text in another row) are removed from the denominator — they are not
negatives. References: Recformer (Li et al. KDD 2023) item–item contrastive loss; UniSRec (Hou et al. KDD 2022)
sequence–item contrastive loss; Tiny-NewsRec (Yu et al. EMNLP 2022) domain post-training.

Each stream draws its examples for an epoch from the training part of the split only, vectorised with numpy,
and encodes each distinct item of a batch once (pre-tokenised rows gathered by id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.errors import ConfigError
from llmrec.types import Dataset, Split, pad_left


def info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float, same: torch.Tensor | None = None) -> torch.Tensor:
    """q, k: (B, H) L2-normalised, row i of k is q_i's positive; same: (B, B) bool, off-diagonal non-negatives."""
    B = q.shape[0]
    logits = q @ k.T / temperature  # (B, H) @ (H, B) -> (B, B)
    if same is not None:
        off = same & ~torch.eye(B, dtype=torch.bool, device=q.device)
        logits = logits.masked_fill(off, float("-inf"))
    return F.cross_entropy(logits, torch.arange(B, device=q.device))


def recency_weights(history: torch.Tensor, decay: float) -> torch.Tensor:
    """(B, T) left-padded ids → (B, T) weights decay^age (age 0 = most recent = last column), 0 on padding."""
    T = history.shape[1]
    age = torch.arange(T - 1, -1, -1, device=history.device, dtype=torch.float32)  # (T,)
    return (decay**age)[None, :] * (history > 0).float()  # (B, T)


class TokenTable:
    """Texts tokenised once (row 0 = an empty padding text); `embed(ids)` gathers rows and runs the encoder."""

    def __init__(self, enc: Any, texts: list[str]) -> None:
        feats = enc.transformer.preprocess([""] + list(texts))
        self.features = {k: v for k, v in feats.items() if isinstance(v, torch.Tensor)}  # each (N+1, L)
        self.extra = {k: v for k, v in feats.items() if not isinstance(v, torch.Tensor)}  # e.g. modality
        self.enc = enc

    def embed(self, ids: np.ndarray) -> torch.Tensor:
        """(n,) row ids → (n, H) normalised embeddings with gradients."""
        idx = torch.from_numpy(np.asarray(ids, dtype=np.int64))
        rows = {k: v[idx] for k, v in self.features.items()}
        width = int(rows["attention_mask"].sum(1).max())  # trim columns that are padding in every row
        dev = self.enc.device
        feats = {k: v[:, :width].to(dev) for k, v in rows.items()} | self.extra
        return F.normalize(self.enc.st(feats)["sentence_embedding"], dim=-1)

    @torch.no_grad()
    def embed_all(self, chunk: int = 128) -> torch.Tensor:
        """Every row without gradients and without dropout, in length-sorted chunks → (N+1, H), row 0 zeros."""
        st = self.enc.st
        was_training = st.training
        st.eval()
        n = self.features["input_ids"].shape[0]
        order = np.argsort(self.features["attention_mask"][1:].sum(1).numpy(), kind="stable") + 1
        parts = [self.embed(order[s : s + chunk]) for s in range(0, n - 1, chunk)]
        st.train(was_training)
        out = torch.zeros(n, parts[0].shape[1], device=parts[0].device)
        out[torch.from_numpy(order)] = torch.cat(parts)
        return out

    def embed_unique(self, ids: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Encode each distinct id once: returns (table (U, H) with a zero row for id 0, inverse (len(ids),))."""
        uniq, inv = np.unique(np.asarray(ids).reshape(-1), return_inverse=True)
        nz = uniq > 0
        emb = self.embed(uniq[nz])  # (U', H)
        if not nz.all():  # id 0 sorts first: a zero vector for padding
            emb = torch.cat([torch.zeros(1, emb.shape[1], device=emb.device), emb], dim=0)
        return emb, inv


@dataclass
class Stream:
    """An objective's examples: `n_examples` per epoch, drawn by `draw(rng)` as a dict of (n, …) arrays."""

    name: str
    n_examples: int
    batch_size: int

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.n_examples // self.batch_size)

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def loss(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        raise NotImplementedError

    def before_step(self, step: int) -> None:
        """Called with the step number within the epoch before each `loss` (e.g. to refresh a memory)."""

    def epoch_batches(self, rng: np.random.Generator, steps: int) -> list[dict[str, np.ndarray]]:
        """`steps` batches for one epoch (a stream shorter than the primary one draws again)."""
        need = steps * self.batch_size
        parts = []
        while sum(len(p["_i"]) for p in parts) < need:
            ex = self.draw(rng)
            ex["_i"] = rng.permutation(len(next(iter(ex.values()))))
            parts.append(ex)
        keys = [k for k in parts[0] if k != "_i"]
        allx = {k: np.concatenate([p[k][p["_i"]] for p in parts])[:need] for k in keys}
        return [{k: v[s * self.batch_size : (s + 1) * self.batch_size] for k, v in allx.items()} for s in range(steps)]


def _train_bounds(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users whose training part has ≥ 2 items, with its [start, end) in `split.items`."""
    users = np.arange(1, split.n_users + 1)
    s, e = split.history_bounds(users, "train")
    keep = (e - s) >= 2
    return users[keep], s[keep], e[keep]


class NextItemStream(Stream):
    """User history → next item: the recency-weighted mean of the history's item embeddings (the whole history
    before the target, or its last `history_len` items if > 0) must pick out the next training item among the
    batch's targets.

    With `history_grad` the history items are encoded with gradients at every step (exact, but ~10 texts per
    example). Without it (the default) they are read from a memory of every item's embedding under the
    current weights, recomputed without gradients at the start of each epoch and every `refresh_every` steps;
    gradients then flow through the targets, which are also the in-batch negatives (a stop-gradient user
    side, as in momentum/memory-bank contrastive learning), at ~1/8 of the cost on a CPU.
    """

    def __init__(self, table: TokenTable, split: Split, batch_size: int, samples_per_user: int, history_len: int,
                 decay: float, temperature: float, history_grad: bool = False, refresh_every: int = 50,
                 catalog_negatives: bool = False) -> None:
        self.users, self.starts, self.ends = _train_bounds(split)
        super().__init__("next_item", len(self.users) * samples_per_user, batch_size)
        self.table, self.items, self.k = table, split.items, samples_per_user
        self.history_len, self.decay, self.temperature = history_len, decay, temperature
        self.history_grad, self.refresh_every = history_grad, max(1, refresh_every)
        self.catalog_negatives = catalog_negatives
        self.memory: torch.Tensor | None = None  # (N+1, H) item embeddings without gradients

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = np.repeat(self.starts, self.k)
        e = np.repeat(self.ends, self.k)
        pos = s + rng.integers(1, e - s)  # target position, after at least one history item
        if self.history_len > 0:
            hist = pad_left(self.items, np.maximum(s, pos - self.history_len), pos, self.history_len)  # (n, T)
        else:
            width = int((self.ends - self.starts).max())  # a fixed width, so epochs' draws concatenate
            hist = pad_left(self.items, s, pos, width)  # (n, T): the whole history
        return {"history": hist, "target": self.items[pos]}

    def before_step(self, step: int) -> None:
        if (self.catalog_negatives or not self.history_grad) and step % self.refresh_every == 0:
            self.memory = self.table.embed_all()

    def loss(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        hist, tgt = batch["history"], batch["target"]
        used = np.nonzero((hist != 0).any(axis=0))[0]
        hist = hist[:, used[0] if len(used) else hist.shape[1] - 1 :]  # drop all-padding columns (B, T)
        B, T = hist.shape
        if self.history_grad:
            emb, inv = self.table.embed_unique(np.concatenate([hist.ravel(), tgt]))
            h = emb[torch.from_numpy(inv[: B * T])].view(B, T, -1)  # (B, T, H)
            t = emb[torch.from_numpy(inv[B * T :])]  # (B, H)
        else:
            if self.memory is None:
                self.memory = self.table.embed_all()
            h = self.memory[torch.from_numpy(hist)]  # (B, T, H), no gradient
            emb, inv = self.table.embed_unique(tgt)
            t = emb[torch.from_numpy(inv)]  # (B, H)
        w = recency_weights(torch.from_numpy(hist), self.decay).to(h.device)  # (B, T)
        user = F.normalize((w[..., None] * h).sum(1), dim=-1)  # (B, H)
        tg = torch.from_numpy(tgt)
        same = tg[:, None] == tg[None, :]  # another row with the same target is not a negative
        if not self.catalog_negatives:
            return info_nce(user, t, self.temperature, same.to(h.device))
        # every other catalogue item from the memory as extra negatives (no gradient through them)
        logits = user @ t.T / self.temperature  # (B, B)
        logits = logits.masked_fill(same & ~torch.eye(B, dtype=torch.bool), float("-inf"))
        if self.memory is None:
            self.memory = self.table.embed_all()
        mem = user @ self.memory.T / self.temperature  # (B, H) @ (H, N+1) -> (B, N+1)
        skip = torch.zeros(mem.shape[1], dtype=torch.bool)
        skip[0] = True
        skip[tg] = True  # the batch's targets are already columns, with gradients
        mem = mem.masked_fill(skip, float("-inf"))
        return F.cross_entropy(torch.cat([logits, mem], dim=1), torch.arange(B))


class CoocStream(Stream):
    """Item–item co-occurrence: an item and one that follows it within `window` positions in a training
    sequence (symmetric InfoNCE)."""

    def __init__(self, table: TokenTable, split: Split, batch_size: int, samples_per_user: int, window: int,
                 temperature: float) -> None:
        self.users, self.starts, self.ends = _train_bounds(split)
        super().__init__("cooc", len(self.users) * samples_per_user, batch_size)
        self.table, self.items, self.k = table, split.items, samples_per_user
        self.window, self.temperature = window, temperature

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = np.repeat(self.starts, self.k)
        e = np.repeat(self.ends, self.k)
        a = s + rng.integers(0, e - s - 1)
        p = np.minimum(a + rng.integers(1, self.window + 1, size=len(a)), e - 1)
        return {"anchor": self.items[a], "positive": self.items[p]}

    def loss(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        a, p = batch["anchor"], batch["positive"]
        B = len(a)
        emb, inv = self.table.embed_unique(np.concatenate([a, p]))
        ea, ep = emb[torch.from_numpy(inv[:B])], emb[torch.from_numpy(inv[B:])]
        at, pt = torch.from_numpy(a), torch.from_numpy(p)
        same = (pt[:, None] == pt[None, :]) | (at[:, None] == at[None, :]) | (at[:, None] == pt[None, :])
        same = same | same.T
        return 0.5 * (info_nce(ea, ep, self.temperature, same) + info_nce(ep, ea, self.temperature, same))


class FieldPairStream(Stream):
    """Domain post-training (DP): an item's `anchor` field must pick out its other text fields among the
    batch's (symmetric InfoNCE); rows whose other-field text is identical are not negatives of each other."""

    def __init__(self, enc: Any, dataset: Dataset, split: Split, batch_size: int, anchor: str,
                 temperature: float) -> None:
        from llmrec.data.item_text import item_sentences

        fields = [f for f in dataset.items.text_fields if f != anchor]
        if anchor not in dataset.items.text_fields or not fields:
            raise ConfigError(
                f"objective dp pairs one text field with the others; {dataset.name} has text fields "
                f"{dataset.items.text_fields} (dp_anchor={anchor!r})"
            )
        train_items = np.unique(split.items[_train_positions(split)])
        train_items = train_items[train_items > 0]
        a_txt = item_sentences(dataset.items, train_items, [anchor])
        o_txt = item_sentences(dataset.items, train_items, fields)
        ok = np.array([not t.startswith("item: ") for t in a_txt]) & np.array([not t.startswith("item: ") for t in o_txt])
        a_txt = [t for t, k in zip(a_txt, ok) if k]
        o_txt = [t for t, k in zip(o_txt, ok) if k]
        super().__init__("dp", len(a_txt), batch_size)
        self.anchor_table = TokenTable(enc, a_txt)  # row r+1 = example r
        self.other_table = TokenTable(enc, o_txt)
        _, self.group = np.unique(np.array(o_txt, dtype=object).astype(str), return_inverse=True)
        self.temperature = temperature

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"row": np.arange(1, self.n_examples + 1)}

    def loss(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        rows = batch["row"]
        qa = self.anchor_table.embed(rows)
        ko = self.other_table.embed(rows)
        g = torch.from_numpy(self.group[rows - 1])
        same = g[:, None] == g[None, :]
        return 0.5 * (info_nce(qa, ko, self.temperature, same) + info_nce(ko, qa, self.temperature, same))


def _train_positions(split: Split) -> np.ndarray:
    from llmrec.types import _ranges

    s, e = split.history_bounds(np.arange(split.n_users + 1), "train")
    return _ranges(s, e)


def build_objectives(enc: Any, dataset: Dataset, split: Split, cfg: Any) -> list[Stream]:
    """The streams for `cfg.objectives` (a LoraTuneConfig), the first one setting the epoch length."""
    from llmrec.data.item_text import item_sentences

    table = TokenTable(enc, item_sentences(dataset.items))  # row i = item i
    out: list[Stream] = []
    for name in cfg.objectives:
        if name == "next_item":
            out.append(NextItemStream(table, split, cfg.batch_size, cfg.samples_per_user, cfg.history_len,
                                      cfg.decay, cfg.temperature, cfg.history_grad, cfg.refresh_every,
                                      cfg.negatives == "catalog"))
        elif name == "cooc":
            out.append(CoocStream(table, split, cfg.batch_size, cfg.samples_per_user, cfg.cooc_window,
                                  cfg.temperature))
        elif name == "dp":
            out.append(FieldPairStream(enc, dataset, split, cfg.batch_size, cfg.dp_anchor, cfg.temperature))
        else:  # LoraTuneConfig validates the names; this guards direct callers
            raise ConfigError(f"unknown objective {name!r}")
    if out[0].n_examples < 2:
        raise ConfigError(f"{dataset.name}: too little training data for objective {out[0].name}")
    return out
