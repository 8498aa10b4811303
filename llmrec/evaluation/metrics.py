"""Ranking and classification metrics — pure functions on tensors/arrays, no I/O. Defined here once, used by
`evaluate`, `compare`, the hybrid's weight learning and training-time validation.

Columns: a scorer's (B, C) scores are ranked over `candidate_mask` (never padding; under full ranking never the
user's history), and the target over `target_columns` (full ranking: its own column unmasked, repeat
consumption). Ranks are 0-based and pessimistic: a candidate scoring the same as the target is ranked above it,
so a constant scorer gets rank C-1 (HR@1 = 0). A target missing from its candidate list has rank = inf (a miss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from llmrec.errors import LLMRecError


def candidate_mask(history: torch.Tensor, candidates: torch.Tensor | None, n_cols: int) -> torch.Tensor:
    """(B, C) True where a column is a real candidate: a candidate column that is not padding (0), or under full
    ranking (`candidates` None, C = N+1) every item but the padding column 0 and the user's history (B, T)."""
    if candidates is not None:
        return candidates > 0
    valid = torch.ones(len(history), n_cols, dtype=torch.bool)
    valid[:, 0] = False
    valid.scatter_(1, history.to(torch.long), False)  # the user's history (padding 0 already masked)
    return valid


def target_columns(
    candidates: torch.Tensor | None, targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ranked, col): the (B, C) columns each target is ranked against and its (B,) column, -1 where the target
    is not among the valid candidates. Full ranking: `mask` with the target's own column unmasked (a copy; never
    mask the target, repeat consumption) and col = the target id; candidates: `mask` itself."""
    if candidates is None:
        ranked = mask.clone()
        ranked[torch.arange(len(targets)), targets] = True
        return ranked, targets.clone()
    match = (candidates == targets[:, None]) & mask  # (B, C)
    return mask, torch.where(match.any(1), match.float().argmax(1), torch.full_like(targets, -1))


def pessimistic_ranks(scores: torch.Tensor, target_col: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """0-based rank of the target among the valid columns of each row, ties counted against the target.

    scores: (B, C) float; target_col: (B,) long, -1 where the target is not a candidate; valid: (B, C) bool
    (padding and masked items False). Returns (B,) float with inf for rows whose target is missing.
    """
    B, C = scores.shape
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    present = target_col >= 0
    col = target_col.clamp(min=0)
    t = scores.gather(1, col[:, None])  # (B, 1)
    others = valid.clone()
    others[torch.arange(B), col] = False
    ahead = ((scores >= t) & others).sum(dim=1).to(torch.float64)  # (B,)
    return torch.where(present, ahead, torch.full_like(ahead, math.inf))


def valid_counts(valid: torch.Tensor, target_col: torch.Tensor) -> torch.Tensor:
    """Number of non-target valid candidates per row (the negatives), for AUC."""
    n = valid.sum(dim=1).to(torch.float64)
    return n - (target_col >= 0).to(torch.float64)


def metrics_from_ranks(
    ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10, 20), n_negatives: np.ndarray | None = None
) -> dict[str, float]:
    """HR@K, NDCG@K (one relevant item: 1/log2(rank+2)), MRR and, given the negatives' count, AUC
    (the fraction of negatives ranked below the target; misses count 0)."""
    r = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    if len(r) == 0:
        return {f"HR@{k}": 0.0 for k in ks} | {f"NDCG@{k}": 0.0 for k in ks} | {"MRR": 0.0}
    finite = np.isfinite(r)
    for name in [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks] + ["MRR"]:
        out[name] = float(np.mean(per_user_metric(r, name)))
    if n_negatives is not None:
        neg = np.asarray(n_negatives, dtype=np.float64)
        auc = np.zeros_like(r)
        ok = finite & (neg > 0)
        auc[ok] = (neg[ok] - r[ok]) / neg[ok]
        out["AUC"] = float(np.mean(auc))
    return out


def per_user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Per-user values of HR@K, NDCG@K (one relevant item: 1/log2(rank+2) within the top K) or MRR from 0-based
    pessimistic ranks (inf = miss); their mean is the reported metric."""
    r = np.asarray(ranks, dtype=np.float64)
    if metric == "MRR":
        return np.where(np.isfinite(r), 1.0 / (r + 1.0), 0.0)
    kind, _, k = metric.partition("@")
    if not k.isdigit() or kind not in ("HR", "NDCG"):
        raise LLMRecError(f"unknown metric {metric!r}; use HR@K, NDCG@K or MRR")
    hit = r < int(k)
    if kind == "HR":
        return hit.astype(np.float64)
    return np.where(hit, 1.0 / np.log2(np.where(hit, r, 0) + 2.0), 0.0)


def metric_by_target_position(
    ranks: np.ndarray, positions: np.ndarray, n_candidates: int, metric: str = "HR@1", n_bins: int = 5
) -> list[dict[str, float | int | None]]:
    """A metric split by where the target sat in the candidate list shown to the model — the diagnosis of
    position bias in an LLM ranker: a label-blind model that always picks "A" scores HR@1 = 1 in the first bin
    and 0 elsewhere; an unbiased one is flat. `positions` are 0-based (-1: the target is not in the list; such
    users are left out); the bins split 0..n_candidates-1 into `n_bins` near-equal ranges. Returns one dict per
    bin: first and last position (1-based, as a prompt numbers them), users, and the metric's mean (None when
    the bin is empty)."""
    pos = np.asarray(positions, dtype=np.int64)
    r = np.asarray(ranks, dtype=np.float64)
    if pos.shape != r.shape:
        raise LLMRecError(f"ranks {r.shape} and positions {pos.shape} differ in shape")
    if n_candidates < 1 or not 1 <= n_bins <= n_candidates:
        raise LLMRecError(f"need 1 ≤ n_bins ≤ n_candidates, got n_bins={n_bins}, n_candidates={n_candidates}")
    if (pos >= n_candidates).any():
        raise LLMRecError(f"a target position is ≥ n_candidates ({n_candidates})")
    keep = pos >= 0
    values = per_user_metric(r[keep], metric)
    bins = pos[keep] * n_bins // n_candidates
    users = np.bincount(bins, minlength=n_bins)
    sums = np.bincount(bins, weights=values, minlength=n_bins)
    out = []
    for b in range(n_bins):
        lo = -(-b * n_candidates // n_bins)  # the first position p with p * n_bins // n_candidates == b
        hi = -(-(b + 1) * n_candidates // n_bins) - 1
        out.append({"first": lo + 1, "last": hi + 1, "users": int(users[b]),
                    metric: float(sums[b] / users[b]) if users[b] else None})
    return out


def auc_binary(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC for binary labels (Mann–Whitney U with tied scores counted 1/2, as in sklearn)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both positive and negative labels")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties (1-based)
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    p, y = np.asarray(pred), np.asarray(labels)
    return float(np.mean(p == y)) if len(y) else 0.0


def macro_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """One-vs-rest AUC averaged over the classes present (multi-class attribute tasks)."""
    P = np.asarray(probs)
    y = np.asarray(labels)
    aucs = [auc_binary(P[:, c], y == c) for c in range(P.shape[1]) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")
