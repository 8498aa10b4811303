"""Text-based user encoders over item text embeddings — no item ids, so unseen items can be recommended.

- `recency_mean(item_emb, history, decay)`: the zero-shot user vector, Σ_t decay^age(t) e_t normalised.
- `EmbeddingScorer`: either user encoder over fixed item embeddings as a Scorer (cosine scores), what the
  `text:` scorer and the LoRA tuner's validation both rank with.
- `TextSeqUserModel`: a small causal Transformer over adapted item text embeddings with a UniSRec-style
  adaptor (Hou et al. KDD 2022): parametric whitening x̃ = (x − b)W per expert and a mixture of experts gated
  by softmax(xG), ẽ = Σ_k g_k x̃_k. Items are represented only through the adaptor applied to their (frozen)
  text embeddings, so any item with text can be scored. Trained with `train_text_seq` on the training part
  of the split: next-item cross-entropy at every position over the items that occur in training
  (cosine similarities / τ), so items absent from training are never pushed down as negatives.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.encoders.contrastive import recency_weights
from llmrec.types import Dataset, ScoreBatch, Split, pad_left


def recency_mean(item_emb: torch.Tensor, history: torch.Tensor, decay: float = 0.9) -> torch.Tensor:
    """item_emb (N+1, H) with a zero row 0; history (B, T) left-padded → (B, H) L2-normalised user vectors.
    A user with an empty history gets the zero vector (every item then scores 0)."""
    w = recency_weights(history, decay)  # (B, T)
    real = history > 0
    rows = torch.arange(history.shape[0], device=history.device)[:, None].expand_as(history)[real]  # (nnz,)
    # a sparse (B, N+1) weight matrix times the item table: O(nnz·H), never materialising (B, T, H)
    W = torch.sparse_coo_tensor(torch.stack([rows, history[real]]), w[real], (history.shape[0], item_emb.shape[0]),
                                check_invariants=False)
    return F.normalize(torch.sparse.mm(W, item_emb), dim=-1)  # (B, N+1) @ (N+1, H) -> (B, H)


@dataclass
class TextSeqConfig:
    """The trained text user encoder (UniSRec-style adaptor + causal Transformer); sizes for ml-100k-scale data."""

    hidden: int = 64  # H of the adaptor output and the Transformer
    layers: int = 2
    heads: int = 2
    experts: int = 8  # whitening experts in the MoE adaptor (UniSRec uses 8)
    dropout: float = 0.2  # on adapted item vectors and inside the Transformer
    max_len: int = 50  # T: the most recent items of a history
    epochs: int = 40
    batch_size: int = 128  # users per step
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.07  # τ on cosine similarities (UniSRec's value)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if min(self.hidden, self.layers, self.heads, self.experts, self.max_len, self.batch_size) < 1:
            raise ValueError("hidden, layers, heads, experts, max_len and batch_size must be ≥ 1")


class MoEAdaptor(nn.Module):
    """UniSRec's adaptor: K parametric-whitening experts (x − b_k) W_k mixed by a softmax gate over x."""

    def __init__(self, d_in: int, d_out: int, experts: int, dropout: float) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(experts, d_in))  # b_k
        self.weight = nn.Parameter(torch.empty(experts, d_in, d_out))  # W_k
        nn.init.normal_(self.weight, std=0.02)
        self.gate = nn.Linear(d_in, experts, bias=False)
        nn.init.zeros_(self.gate.weight)  # start as a uniform mixture
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)  # (..., D)
        k, d, h = self.weight.shape
        experts = (x @ self.weight.permute(1, 0, 2).reshape(d, k * h)).unflatten(-1, (k, h))  # one GEMM: (..., K, H)
        experts = experts - torch.einsum("kd,kdo->ko", self.bias, self.weight)  # (x − b_k) W_k
        g = torch.softmax(self.gate(x), dim=-1)  # (..., K)
        return (g[..., None] * experts).sum(-2)  # (..., O)


class Block(nn.Module):
    """Pre-norm Transformer block with masked scaled-dot-product attention."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allow: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allow)  # dropout on the residuals only (faster)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, H)))  # (B, T, H)
        return x + self.drop(self.ffn(self.ln2(x)))


class TextSeqUserModel(nn.Module):
    """Adapted item text embeddings → causal Transformer → a user vector per position (most recent last)."""

    def __init__(self, d_text: int, cfg: TextSeqConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.adaptor = MoEAdaptor(d_text, cfg.hidden, cfg.experts, cfg.dropout)
        self.pos = nn.Embedding(cfg.max_len, cfg.hidden)  # counted from the right: the last item is position T-1
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)

    def items(self, text_emb: torch.Tensor) -> torch.Tensor:
        """(N+1, D) text embeddings → (N+1, H) normalised item vectors (row 0 is meaningless padding)."""
        return F.normalize(self.adaptor(text_emb), dim=-1)

    def forward(self, history: torch.Tensor, text_emb: torch.Tensor, adapted: torch.Tensor | None = None) -> torch.Tensor:
        """history (B, T ≤ max_len) left-padded → (B, T, H) normalised user vectors after each position.

        adapted: `adaptor(text_emb)` (N+1, H) when the caller already has it (the adaptor is per item, so it
        runs once over the catalogue rather than once per history position)."""
        B, T = history.shape
        if adapted is None:
            adapted = self.adaptor(text_emb)  # (N+1, H)
        x = adapted[history]  # (B, T, H)
        x = self.drop(x + self.pos.weight[self.cfg.max_len - T :][None])
        real = history > 0  # (B, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T, T)
        # attend to earlier real items; a position always sees itself, so no row is fully masked
        allow = (causal[None] & real[:, None, :]) | torch.eye(T, dtype=torch.bool, device=x.device)[None]
        allow = allow[:, None]  # (B, 1, T, T)
        for blk in self.blocks:
            x = blk(x, allow)
        return F.normalize(self.ln(x), dim=-1)

    def user(self, history: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """(B, T) → (B, H): the vector after the most recent item."""
        T = min(history.shape[1], self.cfg.max_len)
        return self.forward(history[:, -T:], text_emb)[:, -1]


def train_text_seq(
    text_emb: torch.Tensor, split: Split, cfg: TextSeqConfig, progress: bool | None = None
) -> tuple[TextSeqUserModel, dict]:
    """Fit a `TextSeqUserModel` on the training part of `split` over frozen text embeddings (N+1, D).

    Each epoch takes, per user, a window of up to max_len+1 training items ending at a random position (the
    last window included), and predicts every next item from its prefix. Returns the model (eval mode) and a
    training log."""
    g = np.random.default_rng(cfg.seed)
    users = np.arange(1, split.n_users + 1)
    starts, ends = split.history_bounds(users, "train")
    keep = ends - starts >= 2
    starts, ends = starts[keep], ends[keep]
    in_train = torch.zeros(text_emb.shape[0], dtype=torch.bool)
    in_train[torch.from_numpy(np.unique(split.items[_concat_ranges(starts, ends)]))] = True
    in_train[0] = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = TextSeqUserModel(text_emb.shape[1], cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = math.ceil(len(starts) / cfg.batch_size)
        show = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.epochs * steps, desc="text user encoder", unit="step", file=sys.stderr)
        log = []
        t0 = time.perf_counter()
        model.train()
        for _ in range(cfg.epochs):
            # window end: uniform over [min(start+max_len+1, end), end], so the last window is always possible
            lo = np.minimum(starts + cfg.max_len + 1, ends)
            e = lo + (g.random(len(ends)) * (ends - lo + 1)).astype(np.int64)
            seqs = torch.from_numpy(pad_left(split.items, np.maximum(starts, e - cfg.max_len - 1), e, cfg.max_len + 1))
            order = torch.from_numpy(g.permutation(len(seqs)))
            total = 0.0
            for s in range(0, len(seqs), cfg.batch_size):
                seq = seqs[order[s : s + cfg.batch_size]]  # (B, T+1)
                inp, tgt = seq[:, :-1], seq[:, 1:]  # (B, T) each
                adapted = model.adaptor(text_emb)  # (N+1, H), once per step
                users_v = model(inp, text_emb, adapted)  # (B, T, H)
                items_v = F.normalize(adapted, dim=-1)  # (N+1, H)
                mask = (inp > 0) & (tgt > 0)  # positions with a real prefix and a real next item
                logits = users_v[mask] @ items_v.T / cfg.temperature  # (M, H) @ (H, N+1) -> (M, N+1)
                logits = logits.masked_fill(~in_train, float("-inf"))
                loss = F.cross_entropy(logits, tgt[mask])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(seq)
                if bar is not None:
                    bar.update(1)
            log.append(round(total / len(seqs), 4))
        if bar is not None:
            bar.close()
    model.eval()
    seconds = time.perf_counter() - t0
    return model, {"epochs": cfg.epochs, "loss": log, "seconds": round(seconds, 2),
                   "params": int(sum(p.numel() for p in model.parameters()))}


def _concat_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    from llmrec.types import _ranges

    return _ranges(starts, ends)


class EmbeddingScorer:
    """Scores with fixed item vectors (N+1, H) and a user encoder: the recency mean, or a trained model."""

    name = "text-embedding"

    def __init__(self, item_emb: torch.Tensor, decay: float = 0.9, user_model: TextSeqUserModel | None = None) -> None:
        self.item_emb = item_emb  # (N+1, D) text embeddings, row 0 zeros
        self.decay = decay
        self.user_model = user_model
        if user_model is not None:
            with torch.no_grad():
                self.item_vec = user_model.items(item_emb)  # (N+1, H)
        else:
            self.item_vec = item_emb

    def fit(self, dataset: Dataset, split: Split) -> None:  # already fitted by construction
        pass

    def users(self, history: torch.Tensor) -> torch.Tensor:
        if self.user_model is None:
            return recency_mean(self.item_emb, history, self.decay)  # (B, H)
        return self.user_model.user(history, self.item_emb)  # (B, H)

    @torch.no_grad()
    def score(self, batch: ScoreBatch) -> torch.Tensor:
        u = self.users(batch.history)  # (B, H)
        if batch.candidates is None:
            return u @ self.item_vec.T  # (B, H) @ (H, N+1) -> (B, N+1)
        return torch.einsum("bh,bch->bc", u, self.item_vec[batch.candidates])  # (B, C)
