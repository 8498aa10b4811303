"""Scorers: every method answers "a score per (user, candidate)" through `Scorer.score(batch) -> (B, C)`."""

from llmrec.scorers.base import SCORERS, Scorer, ScorerContext, build_scorer

__all__ = ["SCORERS", "Scorer", "ScorerContext", "build_scorer"]
