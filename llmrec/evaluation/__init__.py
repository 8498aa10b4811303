"""Evaluation core: pure metrics, batched evaluation of any Scorer on a saved CandidateSet, reports."""

from llmrec.evaluation.evaluate import EvalResult, evaluate
from llmrec.evaluation.metrics import auc_binary, metrics_from_ranks, pessimistic_ranks

__all__ = ["EvalResult", "auc_binary", "evaluate", "metrics_from_ranks", "pessimistic_ranks"]
