"""`run_evaluation(cfg)`: the whole of `llmrec evaluate` as a function — load, split, candidates, fit, evaluate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmrec.data.canonical import DataConfig

if TYPE_CHECKING:
    from llmrec.evaluation import EvalResult


@dataclass
class EvaluateConfig:
    """One evaluation: which data, which method, which candidates."""

    dataset: str = ""
    scorer: str = "pop"  # NAME[:ARG], see `llmrec evaluate --help`
    protocol: str = "full"  # full | sampled:N[:pop] | candidates:FILE | nir | nir-uf:N | nir-if:N
    phase: str = "test"  # test | valid
    k: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    seed: int = 0  # candidate sampling, user sampling and the scorer's own randomness
    max_users: int = 0  # evaluate a seeded sample of this many users (0 = all)
    batch_size: int = 0  # users per scoring batch (0 = automatic)
    max_history: int = 0  # hand the scorer at most the last T history items (0 = all)
    llm: str | None = None  # LLM backend spec for llm:* scorers, e.g. hf:smollm2-135m or openai:URL#model
    options: dict[str, Any] = field(default_factory=dict)  # scorer-specific options (--set options.KEY=VALUE)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if self.phase not in ("test", "valid"):
            raise ValueError(f"phase must be 'test' or 'valid', got {self.phase!r}")
        if any(k < 1 for k in self.k):
            raise ValueError(f"k must be ≥ 1, got {self.k}")
        for name in ("seed", "max_users", "batch_size", "max_history"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")


def run_evaluation(cfg: EvaluateConfig, data_dir: str | None = None) -> EvalResult:
    """Load, split, build the scorer and the candidates (a seeded user sample of them with `max_users`), fit,
    evaluate; `scorer_report["fit_seconds"]` says how long the fit took. Heavy libraries load here, not on
    import, so the command line stays quick to start."""
    import numpy as np

    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates
    from llmrec.evaluation import evaluate
    from llmrec.scorers import ScorerContext, build_scorer

    dataset = load_dataset(cfg.dataset, data_dir, cfg.data)
    split = leave_one_out(dataset)
    scorer = build_scorer(cfg.scorer, ScorerContext(seed=cfg.seed, llm=cfg.llm, options=dict(cfg.options)))
    candidates = make_candidates(dataset, split, cfg.protocol, cfg.phase, cfg.seed, data_dir=data_dir)
    if cfg.max_users and cfg.max_users < len(candidates.users):
        rng = np.random.default_rng(cfg.seed)
        pick = np.sort(rng.choice(len(candidates.users), cfg.max_users, replace=False))
        candidates = candidates.subset(pick)
    if hasattr(scorer, "bind_protocol"):  # e.g. a hybrid learning its weights on this protocol's validation twin
        scorer.bind_protocol(cfg.protocol)
    t = time.perf_counter()
    scorer.fit(dataset, split)
    fit_s = time.perf_counter() - t
    result = evaluate(
        scorer, dataset, split, candidates, ks=tuple(cfg.k), batch_size=cfg.batch_size or None,
        max_history=cfg.max_history or None,
    )
    result.scorer_report["fit_seconds"] = round(fit_s, 3)
    return result
