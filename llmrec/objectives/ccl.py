"""ccl: contrastive learning with mask-and-fill augmentation and a curriculum (Bian et al., CIKM 2021, CCL).

Two views of each sequence are made by masking a set M of positions and filling each with an item sampled
from a SEPARATELY TRAINED masked-item generator, i ~ P(· | s_{−M}, A_u) — never from the encoder being
pre-trained. The generator (`MaskFillGenerator`) is a small BERT4Rec trained first, by Cloze on the training
part, whose every input position also receives the user's attributes A_u (each attribute embedded, the
embeddings mean-pooled and added to the item + position embeddings, as the paper describes); data without
user attributes gives an unconditioned generator. It is trained once when the objective is built, from the
run's seed (a resumed run retrains the same one), and then frozen: it is not part of the encoder's weights.
The mask ratio follows a curriculum from easy to hard, linear in the stage's epochs: ratio_start → ratio_end.
The two views' user vectors are pulled together with NT-Xent against the batch (as in `cl4srec`):

    L = − Σ_i log( exp(sim(z'_i, z''_i)/τ) / Σ_{k≠i} exp(sim(z'_i, z_k)/τ) )

Works with any encoder. Attributes: the columns of `context.users` (internal user id index); numeric columns
with many values are cut into quantile bins, columns with a value per user (zip codes) are skipped, missing
values are "unknown". Leakage: a downstream task that predicts an attribute must hide its held-out users'
values from the generator (scripts/bench_pretrain.py passes only the attribute-training users' values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.objectives import augment
from llmrec.objectives.base import (
    Objective,
    ObjectiveContext,
    ObjectiveOutput,
    SeqBatch,
    info_nce,
    sequence_input,
)
from llmrec.objectives.masked_item import cloze_mask
from llmrec.types import _ranges, pad_left


def attribute_codes(users: Any, n_users: int, max_bins: int = 8) -> tuple[torch.Tensor, list[int]] | None:
    """(U+1, A) int64 codes of each usable attribute column (0 = unknown) and each column's code count, or None.

    A column is usable when it has between 2 and n_users/2 distinct values (an identifier-like column such as
    a zip code is skipped); numeric columns with more than `max_bins` values become quantile bins."""
    if users is None or len(users) == 0:
        return None
    cols, cards = [], []
    for name in users.columns:
        col = users[name].reindex(range(n_users + 1))
        values = col.dropna()
        distinct = values.nunique()
        if distinct < 2 or distinct > max(2, n_users // 2):
            continue
        if pd.api.types.is_numeric_dtype(values) and distinct > max_bins:
            edges = np.unique(np.quantile(values.to_numpy(dtype=np.float64), np.linspace(0, 1, max_bins + 1)[1:-1]))
            code = np.digitize(col.to_numpy(dtype=np.float64), edges) + 1
            card = len(edges) + 1
        else:
            cats = sorted(values.astype(str).unique())
            code = pd.Categorical(col.astype("string"), categories=cats).codes + 1  # NaN: -1 + 1 = 0
            card = len(cats)
        code = np.where(col.isna().to_numpy(), 0, code)
        cols.append(code.astype(np.int64))
        cards.append(card)
    if not cols:
        return None
    return torch.from_numpy(np.stack(cols, axis=1)), cards


class MaskFillGenerator(nn.Module):
    """A BERT4Rec that predicts masked items from the rest of the sequence and the user's attributes."""

    def __init__(self, n_items: int, max_len: int, hidden: int, n_layers: int,
                 attributes: tuple[torch.Tensor, list[int]] | None) -> None:
        super().__init__()
        from llmrec.models.bert4rec import BERT4Rec, BERT4RecConfig

        self.bert = BERT4Rec(BERT4RecConfig(n_items=n_items, max_len=max_len, hidden=hidden, n_layers=n_layers,
                                            n_heads=2, dropout=0.2))
        self.mask_token = self.bert.mask_token
        self.register_buffer("codes", attributes[0] if attributes else torch.zeros(0, 0, dtype=torch.long))
        self.attr_emb = nn.ModuleList(nn.Embedding(c + 1, hidden, padding_idx=0) for c in (attributes or ([], []))[1])

    def condition(self, users: torch.Tensor) -> torch.Tensor | None:
        """(B,) internal user ids → (B, H) mean of the users' attribute embeddings (None without attributes)."""
        if not len(self.attr_emb):
            return None
        codes = self.codes[users]  # (B, A)
        return torch.stack([emb(codes[:, a]) for a, emb in enumerate(self.attr_emb)], dim=1).mean(dim=1)

    def logits(self, seq: torch.Tensor, users: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(M, N) item logits at the (B, T) bool `positions` of the (masked) sequences."""
        h = self.bert(seq, self.condition(users))[positions]  # (M, H)
        return self.bert.item_logits(h)


def train_generator(gen: MaskFillGenerator, split: Any, epochs: int, lr: float, batch_size: int,
                    mask_prob: float, rng: torch.Generator) -> list[float]:
    """Cloze training of `gen` on the training part of `split`, cut into consecutive chunks of max_len items
    (every training item in exactly one chunk); returns the mean loss of each epoch."""
    T = gen.bert.max_len
    users = np.arange(1, split.n_users + 1, dtype=np.int64)
    starts, ends = split.history_bounds(users, "train")
    n_chunks = np.maximum(np.ceil((ends - starts) / T).astype(np.int64), 0)
    owner = np.repeat(users, n_chunks)
    k = _ranges(np.zeros_like(n_chunks), n_chunks)  # chunk index within its user
    chunk_end = np.repeat(ends, n_chunks) - k * T
    chunk_start = np.maximum(chunk_end - T, np.repeat(starts, n_chunks))
    seqs = torch.from_numpy(pad_left(split.items, chunk_start, chunk_end, T))  # (W, T)
    owners = torch.from_numpy(owner)
    opt = torch.optim.Adam(gen.parameters(), lr=lr)
    gen.train()
    losses = []
    for _ in range(epochs):
        total, n = 0.0, 0
        for idx in torch.randperm(len(seqs), generator=rng).split(batch_size):
            seq = seqs[idx]
            masked = cloze_mask(seq, mask_prob, 0.0, rng)
            logits = gen.logits(seq.masked_fill(masked, gen.mask_token), owners[idx], masked)
            loss = F.cross_entropy(logits, seq[masked] - 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * len(idx), n + len(idx)
        losses.append(total / max(n, 1))
    gen.eval()
    gen.requires_grad_(False)
    return losses


class CCL(Objective):
    """Mask-and-fill views (filled by a separately trained generator) + curriculum + InfoNCE."""

    name = "ccl"
    requires = "any"

    @dataclass
    class Options:
        ratio_start: float = 0.1  # share of items masked-and-filled in the first epoch
        ratio_end: float = 0.5  # ... and in the last
        fill_temperature: float = 1.0  # sampling temperature of the generator
        temperature: float = 1.0  # τ of NT-Xent
        similarity: Literal["dot", "cos"] = "dot"
        generator_epochs: int = 20  # Cloze epochs of the generator, trained before the stage
        generator_hidden: int = 64
        generator_layers: int = 2
        generator_lr: float = 1e-3
        generator_mask_prob: float = 0.2
        use_attributes: bool = True  # condition the generator on the user attributes where the data has them

    epoch_ratio: float = 0.1

    def __init__(self, model: nn.Module, options=None, context: ObjectiveContext | None = None) -> None:
        super().__init__(model, options, context)
        o = self.options
        if self.context.split is None:
            raise ValueError("ccl trains its mask-and-fill generator on the training split: give the context one")
        split = self.context.split
        attrs = attribute_codes(self.context.users, split.n_users) if o.use_attributes else None
        # the seed comes from torch's global generator, which the training loop seeds per run and stage
        rng = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        gen = MaskFillGenerator(split.n_items, model.max_len, o.generator_hidden, o.generator_layers, attrs)
        self.generator_losses = train_generator(gen, split, o.generator_epochs, o.generator_lr, 256,
                                                o.generator_mask_prob, rng)
        self.conditioned = attrs is not None
        # kept outside the module tree: frozen, never in the optimiser, the checkpoints or .train()/.eval()
        object.__setattr__(self, "generator", gen)

    def on_epoch_start(self, epoch: int) -> None:
        o, E = self.options, max(1, self.context.epochs - 1)
        self.epoch_ratio = o.ratio_start + (o.ratio_end - o.ratio_start) * min(1.0, epoch / E)

    @torch.no_grad()
    def fill(self, seq: torch.Tensor, users: torch.Tensor, ratio: float, rng: torch.Generator) -> torch.Tensor:
        """(B, T) → (B, T) with ⌈ratio·len⌉ positions masked and filled by items sampled from the generator."""
        gen: MaskFillGenerator = self.generator  # type: ignore[assignment]
        n = augment.lengths(seq)
        k = torch.minimum(torch.clamp((ratio * n).ceil().long(), min=1), n)
        chosen = augment._pick(seq, k, rng)
        if not chosen.any():
            return seq
        logits = gen.logits(seq.masked_fill(chosen, gen.mask_token), users, chosen) / self.options.fill_temperature
        sampled = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=rng).squeeze(1) + 1  # (M,)
        out = seq.clone()
        out[chosen] = sampled
        return out

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:
        seq = sequence_input(batch, self.model.max_len)  # (B, T)
        v1 = self.fill(seq, batch.users, self.epoch_ratio, batch.rng)
        v2 = self.fill(seq, batch.users, self.epoch_ratio, batch.rng)
        z1, z2 = self.model.encode(v1), self.model.encode(v2)
        same_user = batch.users[:, None] == batch.users[None, :]
        loss = info_nce(z1, z2, self.options.temperature, self.options.similarity, same=same_user)
        return ObjectiveOutput(loss, {"ccl": float(loss.detach()), "mask_ratio": self.epoch_ratio}, n=int(seq.shape[0]))
