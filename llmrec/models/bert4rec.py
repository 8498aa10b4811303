"""BERT4Rec: a bidirectional Transformer over a user's item sequence, trained by Cloze (Sun et al., CIKM 2019).

Same conventions as `sasrec.py` (ids 1..N, 0 padding, N+1 = [MASK], left padding, positions counted from the
right, tied item embeddings). The differences: attention sees both directions, so the next item is predicted
by appending [MASK] after the history (`encode`); and outputs pass through a small transform (dense + GELU +
LayerNorm) and a per-item bias before the tied embeddings, as in BERT's masked-LM head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BERT4RecConfig:
    """BERT4Rec hyper-parameters (the paper's small setting: 2 layers, 2 heads, H = 64)."""

    n_items: int = 0  # N, the catalogue size; set from the data set (ids 1..N)
    max_len: int = 50  # T, including the [MASK] appended by `encode`
    hidden: int = 64  # H
    n_layers: int = 2
    n_heads: int = 2
    ffn_mult: int = 4
    dropout: float = 0.2
    norm_first: bool = True
    activation: Literal["gelu", "relu"] = "gelu"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.n_items < 1:
            raise ValueError(f"n_items must be ≥ 1, got {self.n_items}")
        if self.hidden % self.n_heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.max_len < 2 or self.n_layers < 1:
            raise ValueError("max_len must be ≥ 2 and n_layers ≥ 1")


def attention_mask(seq: torch.Tensor) -> torch.Tensor:
    """(B, T) item ids → (B, 1, T, T) bool: every query sees every non-padding key, and itself."""
    T = seq.shape[1]
    keep = seq != 0  # (B, T)
    eye = torch.eye(T, dtype=torch.bool, device=seq.device)
    return (keep[:, None, :] | eye[None])[:, None]  # (B, 1, T, T)


class Block(nn.Module):
    """Multi-head self-attention + position-wise feed-forward, each with dropout and a residual."""

    def __init__(self, cfg: BERT4RecConfig) -> None:
        super().__init__()
        H = cfg.hidden
        self.n_heads = cfg.n_heads
        self.norm_first = cfg.norm_first
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(H, 3 * H)
        self.proj = nn.Linear(H, H)
        self.ffn = nn.Sequential(
            nn.Linear(H, cfg.ffn_mult * H),
            nn.GELU() if cfg.activation == "gelu" else nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.ffn_mult * H, H),
        )
        self.norm1 = nn.LayerNorm(H)
        self.norm2 = nn.LayerNorm(H)
        self.drop = nn.Dropout(cfg.dropout)

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape
        q, k, v = self.qkv(x).split(H, dim=-1)  # 3 × (B, T, H)
        q, k, v = (t.view(B, T, self.n_heads, H // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, h, T, H/h)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, h, T, H/h)
        return self.proj(y.transpose(1, 2).reshape(B, T, H))  # (B, T, H)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop(self.attend(self.norm1(x), mask))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attend(x, mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


class BERT4Rec(nn.Module):
    """Bidirectional sequence encoder. `forward(seq)` → (B, T, H), each position seeing the whole sequence;
    a position holding [MASK] predicts the item that was there. `encode(seq)` appends [MASK] after the history
    and returns its hidden state (B, H): the user vector that scores the next item."""

    name = "bert4rec"
    bidirectional = True

    def __init__(self, cfg: BERT4RecConfig) -> None:
        super().__init__()
        self.config = cfg
        self.n_items = cfg.n_items
        self.mask_token = cfg.n_items + 1
        self.max_len = cfg.max_len
        self.hidden = cfg.hidden
        H = cfg.hidden
        self.item_emb = nn.Embedding(cfg.n_items + 2, H, padding_idx=0)  # 0 pad, 1..N items, N+1 [MASK]
        self.pos_emb = nn.Embedding(cfg.max_len, H)
        self.emb_norm = nn.Identity() if cfg.norm_first else nn.LayerNorm(H)
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(H) if cfg.norm_first else nn.Identity()
        self.out_transform = nn.Sequential(nn.Linear(H, H), nn.GELU(), nn.LayerNorm(H))
        self.out_bias = nn.Parameter(torch.zeros(cfg.n_items))
        self.apply(self._init)

    def _init(self, m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.config.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()

    def forward(self, seq: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) left-padded item ids (may hold [MASK]), T ≤ max_len (longer keep their last max_len) → (B, T, H).
        condition: optional (B, H) added to every position's input embedding (a user-level signal, e.g. the
        user attributes of CCL's mask-and-fill generator)."""
        seq = seq[:, -self.max_len :]
        T = seq.shape[1]
        pos = torch.arange(self.max_len - T, self.max_len, device=seq.device)  # counted from the right
        x = self.item_emb(seq) * math.sqrt(self.hidden) + self.pos_emb(pos)[None]  # (B, T, H)
        if condition is not None:
            x = x + condition[:, None, :]
        x = self.emb_drop(self.emb_norm(x))
        keep = (seq != 0).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        mask = attention_mask(seq)  # (B, 1, T, T)
        x = x * keep
        for block in self.blocks:
            x = block(x, mask) * keep
        return self.final_norm(x)  # (B, T, H)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T) histories → (B, H): the hidden state of a [MASK] appended after the most recent item."""
        seq = seq[:, -(self.max_len - 1) :]
        masked = torch.cat([seq, torch.full_like(seq[:, :1], self.mask_token)], dim=1)  # (B, T+1)
        return self.forward(masked)[:, -1]

    def item_embeddings(self) -> torch.Tensor:
        """(N, H) output embeddings of items 1..N (row i-1 = item i), tied with the input table."""
        return self.item_emb.weight[1 : self.n_items + 1]

    def item_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(..., H) → (..., N) through the masked-LM head: score of item i at index i-1."""
        return self.out_transform(h) @ self.item_embeddings().T + self.out_bias
