"""Text-similarity scorers: items as text embeddings, users as encoded histories — no item ids.

`--scorer text:ENCODER[+ADAPTER][@USER]`
  ENCODER  `minilm` (the packaged all-MiniLM-L6-v2), a local sentence-transformers folder, or a hub id
  ADAPTER  a LoRA adapter folder from `llmrec tune-encoder` (e.g. adapters/ml-100k-minilm-lora)
  USER     `mean` (default, zero-shot: recency-weighted mean of the history's item embeddings) or `seq` (a
           UniSRec-style adaptor + Transformer trained in `fit` on the training part of the split)
Options (`--set options.KEY=VALUE`): see `TextScorerConfig`, e.g. options.decay=0.8, options.seq.epochs=20.

Scores are cosine similarities between the user vector and each item's vector: (B, N+1) for full ranking,
(B, C) for candidate columns. Items that never occur in training score like any other item with text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from llmrec.config import from_dict
from llmrec.encoders.text_user import EmbeddingScorer, TextSeqConfig, train_text_seq
from llmrec.errors import ConfigError
from llmrec.scorers.base import SCORERS, ScorerContext
from llmrec.types import Dataset, ScoreBatch, Split

USER_ENCODERS = ("mean", "seq")


@dataclass
class TextScorerConfig:
    """Options of the `text` scorer."""

    decay: float = 0.9  # mean user encoder: weight decay^age per step back in the history
    merge: bool = True  # fold a LoRA adapter into the weights before encoding (same embeddings, faster)
    batch_size: int = 128  # texts per encoder batch
    max_length: int = 128  # tokens per item sentence
    cache: bool = True  # cache item embeddings on disk (keyed by model, adapter, texts)
    fields: list[str] = field(default_factory=list)  # item text fields in the sentence (default: the data set's)
    seq: TextSeqConfig = field(default_factory=TextSeqConfig)  # the trained user encoder (@seq)

    def __post_init__(self) -> None:
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}")


@dataclass
class TextSpec:
    encoder: str
    adapter: str | None = None
    user: str = "mean"

    @classmethod
    def parse(cls, arg: str | None) -> TextSpec:
        text = arg or "minilm"
        user = "mean"
        head, at, tail = text.rpartition("@")
        if at and tail in USER_ENCODERS:
            text, user = head, tail
        elif at and "/" not in tail:
            raise ConfigError(f"text scorer: unknown user encoder @{tail}; known: {', '.join(USER_ENCODERS)}")
        enc, plus, adapter = text.partition("+")
        if not enc or (plus and not adapter):
            raise ConfigError(f"text scorer spec {arg!r}: expected ENCODER[+ADAPTER_DIR][@mean|@seq]")
        return cls(enc, adapter or None, user)

    def __str__(self) -> str:
        return self.encoder + (f"+{self.adapter}" if self.adapter else "") + (f"@{self.user}" if self.user != "mean" else "")


class TextScorer:
    """`text:ENCODER[+ADAPTER][@USER]`: encode every item sentence in `fit`, then score like EmbeddingScorer."""

    def __init__(self, spec: TextSpec, cfg: TextScorerConfig | None = None, device: str = "cpu") -> None:
        self.spec = spec
        self.cfg = cfg or TextScorerConfig()
        self.device = device
        self.name = f"text:{spec}"
        self._inner: EmbeddingScorer | None = None
        self._report: dict[str, Any] = {}

    def fit(self, dataset: Dataset, split: Split) -> None:
        from llmrec.encoders.text_encoder import TextEncoder

        cfg = self.cfg
        enc = TextEncoder.load(self.spec.encoder, self.spec.adapter, merge=cfg.merge, device=self.device,
                               batch_size=cfg.batch_size, max_length=cfg.max_length)
        t0 = time.perf_counter()
        item_emb = enc.encode_catalog(dataset.items, fields=cfg.fields or None, cache=cfg.cache)  # (N+1, D)
        self._report = {
            "encoder": self.spec.encoder, "adapter": self.spec.adapter, "user_encoder": self.spec.user,
            "item_encode_s": round(time.perf_counter() - t0, 2), "embedding_cache": "hit" if enc.stats.cache_hits
            else ("miss" if enc.stats.cache_misses else "off"),
        }
        del enc
        user_model = None
        if self.spec.user == "seq":
            user_model, log = train_text_seq(item_emb, split, cfg.seq)
            self._report["user_encoder_train"] = {"epochs": log["epochs"], "seconds": log["seconds"],
                                                  "params": log["params"], "final_loss": log["loss"][-1] if log["loss"] else None}
        self._inner = EmbeddingScorer(item_emb, cfg.decay, user_model)

    def score(self, batch: ScoreBatch) -> torch.Tensor:
        if self._inner is None:
            raise RuntimeError("TextScorer.score called before fit")
        return self._inner.score(batch)

    def report(self) -> dict[str, Any]:
        return dict(self._report)


def _factory(arg: str | None, ctx: ScorerContext) -> TextScorer:
    options = dict(ctx.options)
    seq = dict(options.pop("seq", None) or {})
    seq.setdefault("seed", ctx.seed)
    cfg = from_dict(TextScorerConfig, {**options, "seq": seq}, "scorer options")
    return TextScorer(TextSpec.parse(arg), cfg, ctx.device)


SCORERS.add("text", _factory, "text-embedding similarity: text:ENCODER[+ADAPTER_DIR][@mean|@seq]")
