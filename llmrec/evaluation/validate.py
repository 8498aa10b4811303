"""Validation while training: a model in memory scored on one protocol's validation (or test) candidates.

`validate(scorer, dataset, split)` builds (or reuses, they are saved) the candidate set and runs `evaluate` on
it, so early stopping, adapter manifests and the final test numbers all come from the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmrec.data.candidates import make_candidates
from llmrec.evaluation.evaluate import EvalResult, evaluate
from llmrec.types import Dataset, Phase, Split


def validate(
    scorer: Any,
    dataset: Dataset,
    split: Split,
    phase: Phase = "valid",
    protocol: str = "full",
    seed: int = 0,
    ks: Sequence[int] = (10,),
    batch_size: int | None = None,
) -> EvalResult:
    """`scorer` (already fitted: a `ModelScorer` around the model being trained, an `EmbeddingScorer`…) on
    `protocol`'s candidates for `phase`, without a progress bar; the result's `metrics` are what callers keep."""
    cands = make_candidates(dataset, split, protocol, phase, seed)
    return evaluate(scorer, dataset, split, cands, ks=tuple(ks), batch_size=batch_size, progress=False)
