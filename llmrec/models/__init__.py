"""ID-based user models (one per file) and their registry: `build_model("sasrec", n_items, {"hidden": 64})`.

Every model is a `SequenceEncoder`: left-padded item ids in, hidden states out, tied item embeddings. Objectives,
the training loop, `checkpoint.py` (weights + manifest on disk) and `scoring.py` (a model as a Scorer) only use
this contract, so a new model is one file + one `add` here; `tests/models/test_models.py` walks `MODELS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from llmrec.config import from_dict, to_dict
from llmrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from llmrec.models.llm_ids import LLMIDs, LLMIDsConfig
from llmrec.models.sasrec import SASRec, SASRecConfig
from llmrec.registry import Registry


@runtime_checkable
class SequenceEncoder(Protocol):
    """The contract every ID model meets (reference: `SASRec`).

    Item ids are 1..N, 0 is padding and N+1 (`mask_token`) is [MASK]; inputs are left-padded (B, T).
    `forward(seq)` → per-position hidden states (B, T, H); `encode(seq)` → the user vector (B, H) that scores
    the item after `seq` through `item_logits(h)` → (B, N) (item i at index i-1). Optional:
    `init_from_catalog(titles)`, which the training loop calls once on a fresh build with the titles of items 1..N
    (LLM-IDs starts its item rows from them).
    """

    name: str
    bidirectional: bool
    n_items: int
    mask_token: int
    max_len: int
    hidden: int
    config: Any

    def forward(self, seq: torch.Tensor) -> torch.Tensor: ...

    def encode(self, seq: torch.Tensor) -> torch.Tensor: ...

    def item_embeddings(self) -> torch.Tensor: ...

    def item_logits(self, h: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class ModelEntry:
    cls: type[nn.Module]
    config_cls: type


MODELS: Registry[ModelEntry] = Registry("model")
MODELS.add("sasrec", ModelEntry(SASRec, SASRecConfig), "SASRec: causal Transformer (next-item prediction)")
MODELS.add("bert4rec", ModelEntry(BERT4Rec, BERT4RecConfig), "BERT4Rec: bidirectional Transformer (Cloze)")
MODELS.add("llm-ids", ModelEntry(LLMIDs, LLMIDsConfig), "a frozen causal LLM + LoRA over new item tokens (P5 IDs)")


def model_config(name: str, n_items: int, options: dict[str, Any] | None = None, where: str = "model") -> Any:
    """The typed config of model `name` from free-form options; unknown keys raise `ConfigError`."""
    entry = MODELS.get(name)
    data = {k: v for k, v in (options or {}).items() if k != "n_items"}
    return from_dict(entry.config_cls, {**data, "n_items": int(n_items)}, where)


def build_model(name: str, n_items: int, options: dict[str, Any] | None = None) -> nn.Module:
    """A freshly initialised model (seed torch first for reproducible weights)."""
    cfg = model_config(name, n_items, options)
    return MODELS.get(name).cls(cfg)


def model_options(model: nn.Module) -> dict[str, Any]:
    """The config of a model as a plain dict (saved beside checkpoints)."""
    return to_dict(model.config)


__all__ = [
    "MODELS",
    "BERT4Rec",
    "BERT4RecConfig",
    "LLMIDs",
    "LLMIDsConfig",
    "SASRec",
    "SASRecConfig",
    "SequenceEncoder",
    "build_model",
    "model_config",
    "model_options",
]
