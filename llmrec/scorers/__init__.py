"""Scorers: every method answers "a score per (user, candidate)" through `Scorer.score(batch) -> (B, C)`.

Each scorer module registers its scorers in `SCORERS` where they are defined; this package imports them all,
so `SCORERS` lists every scorer as soon as any part of the package is imported, and a missing module fails
loudly at import instead of leaving a name silently unregistered.
"""

from llmrec.scorers import baselines, hybrid, id_model, llm, text_sim  # noqa: F401  (each registers its scorers)
from llmrec.scorers.base import SCORERS, Scorer, ScorerContext, build_scorer

__all__ = ["SCORERS", "Scorer", "ScorerContext", "build_scorer"]
