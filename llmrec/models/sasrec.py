"""SASRec: a causal Transformer over a user's item sequence that predicts the next item (Kang & McAuley, ICDM 2018).

Read top to bottom: config → attention mask → block → model. Conventions shared by every llmrec ID model:
item ids are 1..N, 0 is padding, N+1 is a [MASK] token (used by augmentations such as CL4SRec's item mask);
sequences are left-padded (most recent item last), and position embeddings are counted from the right, so the
most recent item always gets the last position and trimming all-padding columns on the left changes nothing.
Item embeddings are tied: the same table embeds inputs and scores outputs (`item_logits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SASRecConfig:
    """SASRec hyper-parameters; the defaults are the well-tuned full-softmax (CE) setting on these data sets."""

    n_items: int = 0  # N, the catalogue size; set from the data set (ids 1..N)
    max_len: int = 50  # T: longer histories keep their most recent T items
    hidden: int = 64  # H
    n_layers: int = 2
    n_heads: int = 1
    ffn_mult: int = 4  # feed-forward width = ffn_mult * H
    dropout: float = 0.5  # on embeddings, attention and residual branches: 0.5 suits sparse Amazon data, 0.2 ml-100k
    norm_first: bool = True  # pre-LayerNorm blocks + a final LayerNorm (as SASRec's code); False = post-LN (RecBole)
    activation: Literal["gelu", "relu"] = "gelu"
    init_std: float = 0.02  # normal init of embeddings and linear layers (truncated-normal-free, as BERT)

    def __post_init__(self) -> None:
        if self.n_items < 1:
            raise ValueError(f"n_items must be ≥ 1, got {self.n_items}")
        if self.hidden % self.n_heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.max_len < 1 or self.n_layers < 1:
            raise ValueError("max_len and n_layers must be ≥ 1")


def attention_mask(seq: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, T) item ids → (B, 1, T, T) bool, True where query t may attend to key s.

    Padding keys are hidden; every query may see itself, so rows of padding never become all-masked (no NaN).
    """
    B, T = seq.shape
    keep = seq != 0  # (B, T)
    eye = torch.eye(T, dtype=torch.bool, device=seq.device)  # (T, T)
    allowed = keep[:, None, :] | eye[None]  # (B, T, T)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=seq.device).tril()[None]
    return allowed[:, None]  # (B, 1, T, T)


class Block(nn.Module):
    """Multi-head self-attention + position-wise feed-forward, each with dropout and a residual."""

    def __init__(self, cfg: SASRecConfig) -> None:
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


class TiedCausalHead:
    """The user vector and item scores of a causal encoder whose item table `item_emb` (rows 0 pad, 1..N items,
    N+1 [MASK]) both embeds inputs and scores outputs: SASRec, and LLM-IDs (`llm_ids.py`)."""

    item_emb: nn.Embedding
    n_items: int

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T) histories → (B, H): the hidden state at the most recent item."""
        return self.forward(seq)[:, -1]  # type: ignore[attr-defined]

    def item_embeddings(self) -> torch.Tensor:
        """(N, H) output embeddings of items 1..N (row i-1 = item i), tied with the input table."""
        return self.item_emb.weight[1 : self.n_items + 1]

    def item_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(..., H) → (..., N): the score of item i is at index i-1."""
        return h @ self.item_embeddings().T


class SASRec(TiedCausalHead, nn.Module):
    """Causal sequence encoder. `forward(seq)` → per-position hidden states (B, T, H); position t sees items ≤ t
    and predicts item t+1. `encode(seq)` → the user vector (B, H) that scores the item after `seq`."""

    name = "sasrec"
    bidirectional = False

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.config = cfg
        self.n_items = cfg.n_items
        self.mask_token = cfg.n_items + 1
        self.max_len = cfg.max_len
        self.hidden = cfg.hidden
        self.item_emb = nn.Embedding(cfg.n_items + 2, cfg.hidden, padding_idx=0)  # 0 pad, 1..N items, N+1 [MASK]
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.emb_norm = nn.Identity() if cfg.norm_first else nn.LayerNorm(cfg.hidden)
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.hidden) if cfg.norm_first else nn.Identity()
        self.apply(self._init)

    def _init(self, m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.config.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T) left-padded item ids, T ≤ max_len (longer inputs keep their last max_len) → (B, T, H)."""
        seq = seq[:, -self.max_len :]
        T = seq.shape[1]
        pos = torch.arange(self.max_len - T, self.max_len, device=seq.device)  # counted from the right
        x = self.item_emb(seq) * math.sqrt(self.hidden) + self.pos_emb(pos)[None]  # (B, T, H)
        x = self.emb_drop(self.emb_norm(x))
        keep = (seq != 0).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        mask = attention_mask(seq, causal=True)  # (B, 1, T, T)
        x = x * keep
        for block in self.blocks:
            x = block(x, mask) * keep  # padding positions stay zero
        return self.final_norm(x)  # (B, T, H)
