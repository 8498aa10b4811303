"""The Scorer contract and the scorer registry (`llmrec evaluate --scorer NAME[:ARG]`).

A scorer is one file in this package that registers its factory where it is defined (`SCORERS.add(...)` or
`@SCORERS.register(...)`), one import in `__init__.py`, and one row in `tests/test_registries.py`.

Contract: `fit(dataset, split)` once (train, or just bind the catalog), then `score(batch)` returns a float
tensor (B, C) aligned with `batch.candidates`, or (B, N+1) over all items when `batch.candidates is None`.
Higher is better; ties are broken pessimistically by the evaluator, so a constant scorer gets HR@1 = 0.
Reference implementation: `llmrec.scorers.baselines.Popularity`.

Scorers may also implement `report() -> dict` (e.g. parse rate, tokens, latency of an LLM ranker), merged
into the evaluation result next to the metrics.
"""

from __future__ import annotations

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
    """Options every scorer factory may read: the seed, the LLM spec, the device and free-form options
    (`--set options.KEY=VALUE` on the command line). Caches live under the one root, `llmrec.io.cache_dir()`."""

    seed: int = 0
    llm: str | None = None
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)


Factory = Callable[[str | None, ScorerContext], Scorer]

SCORERS: Registry[Factory] = Registry("scorer")


def build_scorer(spec: str, ctx: ScorerContext | None = None) -> Scorer:
    """`"pop"`, `"itemknn"`, `"run:runs/x"`, `"text:minilm+adapters/ml"`, `"llm:nir"` → a Scorer. Every scorer
    module registers itself on import, and `llmrec/scorers/__init__.py` imports them all, so the registry is
    complete before any code of this package runs."""
    name, _, arg = spec.partition(":")
    factory = SCORERS.get(name)
    return factory(arg or None, ctx or ScorerContext())
