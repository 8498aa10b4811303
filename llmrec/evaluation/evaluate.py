"""`evaluate(scorer, dataset, split, candidates)`: batched, vectorised ranking of every evaluated user.

Full ranking scores all N items at once per batch (B, N+1), masks padding and the user's history (never the
target itself), and ranks the target pessimistically. Sampled/fixed candidates score (B, C) columns; padding
columns are ignored; a target missing from a user's candidates is a miss. Per-user ranks are kept. What the
report says about the candidates (targets present, users short of negatives) counts the evaluated users only.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from llmrec.errors import LLMRecError
from llmrec.evaluation.metrics import (
    candidate_mask,
    metrics_from_ranks,
    pessimistic_ranks,
    target_columns,
    valid_counts,
)
from llmrec.io import atomic_write, atomic_write_json, atomic_write_text
from llmrec.types import CandidateSet, Dataset, ScoreBatch, Split

DEFAULT_KS = (1, 5, 10, 20)


@dataclass
class EvalResult:
    """Metrics, the protocol that produced them, and per-user ranks (0-based, pessimistic; inf = miss)."""

    scorer: str
    dataset: str
    protocol: str
    phase: str
    seed: int
    candidates_hash: str
    split_hash: str
    n_candidates: int  # per user; the number of items for full ranking
    metrics: dict[str, float]
    per_user: pd.DataFrame  # columns user, raw_user, target, rank, n_negatives
    seconds: float
    scorer_report: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "phase": self.phase,
            "seed": self.seed,
            "candidates_hash": self.candidates_hash,
            "split_hash": self.split_hash,
            "n_candidates": self.n_candidates,
            **self.metrics,
            "n_users": int(len(self.per_user)),
            "seconds": round(self.seconds, 3),
            "users_per_s": round(len(self.per_user) / max(self.seconds, 1e-9), 1),
            **({"scorer_report": self.scorer_report} if self.scorer_report else {}),
        }

    def to_markdown(self) -> str:
        d = self.to_dict()
        keys = [k for k in self.metrics]
        lines = [
            f"# {self.scorer} on {self.dataset}",
            "",
            f"Protocol: `{self.protocol}` ({self.n_candidates} candidates per user), phase `{self.phase}`, "
            f"leave-one-out by time, seed {self.seed}, {d['n_users']} users; ties broken pessimistically.",
            f"Candidate set hash `{self.candidates_hash}`, split hash `{self.split_hash}`.",
            "",
            "| " + " | ".join(keys) + " |",
            "|" + "---|" * len(keys),
            "| " + " | ".join(f"{self.metrics[k]:.4f}" for k in keys) + " |",
            "",
            f"Wall time {self.seconds:.2f} s ({d['users_per_s']} users/s).",
        ]
        if self.scorer_report:
            lines += ["", "Scorer report:", ""]
            lines += [f"- {k}: {v}" for k, v in self.scorer_report.items()]
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path) -> Path:
        """metrics.json, per_user.csv.gz, report.md and config.json in `out_dir` (each written atomically)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "metrics.json", self.to_dict())
        atomic_write(out / "per_user.csv.gz", lambda p: self.per_user.to_csv(p, index=False, compression="gzip"))
        atomic_write_text(out / "report.md", self.to_markdown())
        if self.config:
            atomic_write_json(out / "config.json", self.config)
        return out


def _auto_batch(n_cols: int) -> int:
    return int(max(16, min(4096, 8_000_000 // max(n_cols, 1))))


def evaluate(
    scorer: Any,
    dataset: Dataset,
    split: Split,
    candidates: CandidateSet,
    ks: tuple[int, ...] = DEFAULT_KS,
    batch_size: int | None = None,
    max_history: int | None = None,
    progress: bool | None = None,
    config: dict[str, Any] | None = None,
) -> EvalResult:
    """Rank each user's target with `scorer` (already fitted) over `candidates`; see the module doc.

    max_history: truncate the histories handed to the scorer to the last T items (None = all).
    """
    if candidates.split_hash != split.hash:
        raise LLMRecError(
            f"candidate set was built on split {candidates.split_hash}, not this data set's split {split.hash}"
        )
    users = candidates.users
    U = len(users)
    full = candidates.items is None
    n_cols = dataset.n_items + 1 if full else int(candidates.items.shape[1])
    bs = batch_size or getattr(scorer, "batch_size", None) or _auto_batch(n_cols)
    ranks = np.empty(U, dtype=np.float64)
    negs = np.empty(U, dtype=np.float64)
    n_nonfinite = 0
    n_target_in = 0  # evaluated users whose target is among their candidates
    show = sys.stderr.isatty() if progress is None else progress
    name = getattr(scorer, "name", type(scorer).__name__)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=U, desc=f"evaluate {name}", unit="user", file=sys.stderr)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, U, bs):
            u = users[s : s + bs]
            B = len(u)
            hist = torch.from_numpy(split.history(u, candidates.phase, max_history))  # (B, T)
            tgt = torch.from_numpy(candidates.targets[s : s + bs])  # (B,)
            cand = None if full else torch.from_numpy(candidates.items[s : s + bs])  # (B, C)
            batch = ScoreBatch(torch.from_numpy(u), hist, cand, candidates.phase)
            scores = scorer.score(batch)
            if not isinstance(scores, torch.Tensor):
                scores = torch.as_tensor(np.asarray(scores))
            scores = scores.detach().to("cpu", torch.float32)
            if scores.shape != (B, n_cols):
                raise LLMRecError(f"scorer {name!r} returned shape {tuple(scores.shape)}, expected {(B, n_cols)}")
            bad = ~torch.isfinite(scores)
            if bad.any():
                n_nonfinite += int(bad.sum())
                scores = torch.where(bad, torch.full_like(scores, -math.inf), scores)
            valid, col = target_columns(cand, tgt, candidate_mask(hist, cand, n_cols))  # (B, C), (B,)
            n_target_in += int((col >= 0).sum())
            ranks[s : s + B] = pessimistic_ranks(scores, col, valid).numpy()
            negs[s : s + B] = valid_counts(valid, col).numpy()
            if bar is not None:
                bar.update(B)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if n_nonfinite:
        warnings.warn(f"scorer {name!r} gave {n_nonfinite} NaN/inf scores; they were ranked last", stacklevel=2)
    metrics = metrics_from_ranks(ranks, ks, negs)
    per_user = pd.DataFrame(
        {
            "user": users,
            "raw_user": dataset.user_index[users - 1].astype(str),
            "target": candidates.targets,
            "raw_target": dataset.item_index[candidates.targets - 1].astype(str),
            "rank": ranks,
            "n_negatives": negs.astype(np.int64),
        }
    )
    report = dict(scorer.report()) if hasattr(scorer, "report") else {}
    if n_nonfinite:
        report["nonfinite_scores"] = n_nonfinite
    if "target_in_candidates" in candidates.meta:  # a protocol that does not insert the target: over these users
        report["target_in_candidates"] = n_target_in
    wanted = candidates.meta.get("negatives")  # sampled:N asks for N negatives per user
    if wanted and U and (negs < wanted).any():
        short = int((negs < wanted).sum())
        report["users_with_fewer_negatives"] = short
        report["min_negatives"] = int(negs.min())
        warnings.warn(
            f"protocol {candidates.protocol}: {short} of {U} users have fewer than {wanted} unseen items to sample "
            f"as negatives (as few as {int(negs.min())}); they are ranked among fewer candidates "
            f"(users_with_fewer_negatives and min_negatives in the report)",
            stacklevel=2,
        )
    return EvalResult(
        scorer=name,
        dataset=dataset.name,
        protocol=candidates.protocol,
        phase=candidates.phase,
        seed=candidates.seed,
        candidates_hash=candidates.hash,
        split_hash=split.hash,
        n_candidates=dataset.n_items if full else int(candidates.items.shape[1]),
        metrics=metrics,
        per_user=per_user,
        seconds=seconds,
        scorer_report=report,
        config=dict(config or {}),
    )
