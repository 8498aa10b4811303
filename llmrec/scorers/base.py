"""The Scorer contract and the scorer registry (`llmrec evaluate --scorer NAME[:ARG]`).

Contract: `fit(dataset, split)` once (train, or just bind the catalog), then `score(batch)` returns a float
tensor (B, C) aligned with `batch.candidates`, or (B, N+1) over all items when `batch.candidates is None`.
Higher is better; ties are broken pessimistically by the evaluator, so a constant scorer gets HR@1 = 0.
Reference implementation: `llmrec.scorers.baselines.Popularity`.

Scorers may also implement `report() -> dict` (e.g. parse rate, tokens, latency of an LLM ranker), merged
into the evaluation result next to the metrics.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from llmrec.registry import Registry
from llmrec.types import Dataset, ScoreBatch, Split


@runtime_checkable
class Scorer(Protocol):
    name: str

    def fit(self, dataset: Dataset, split: Split) -> None: ...

    def score(self, batch: ScoreBatch) -> torch.Tensor: ...


@dataclass
class ScorerContext:
    """Options every scorer factory may read: the seed, the LLM spec, a cache folder and free-form options
    (`--set scorer.KEY=VALUE` on the command line)."""

    seed: int = 0
    llm: str | None = None
    device: str = "cpu"
    cache_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


Factory = Callable[[str | None, ScorerContext], Scorer]

SCORERS: Registry[Factory] = Registry("scorer")

# Modules that register scorers, imported lazily on first lookup so `import llmrec` stays light.
_SCORER_MODULES = [
    "llmrec.scorers.baselines",
    "llmrec.scorers.id_model",
    "llmrec.scorers.text_sim",
    "llmrec.scorers.llm",
    "llmrec.scorers.hybrid",
]
_loaded = False


def load_scorer_modules() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _SCORER_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # the module exists but a dependency of it is missing: that is a real error
                raise
    _loaded = True


def build_scorer(spec: str, ctx: ScorerContext | None = None) -> Scorer:
    """`"pop"`, `"itemknn"`, `"run:runs/x"`, `"text:minilm+adapters/ml"`, `"llm:nir"` → a Scorer."""
    load_scorer_modules()
    name, _, arg = spec.partition(":")
    factory = SCORERS.get(name)
    return factory(arg or None, ctx or ScorerContext())
