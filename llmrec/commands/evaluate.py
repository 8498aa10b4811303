"""`llmrec evaluate`: score one method on a saved candidate protocol and report HR@K, NDCG@K, MRR, AUC.

Examples:
  llmrec evaluate --dataset ml-100k --scorer itemknn --protocol full
  llmrec evaluate --dataset beauty --scorer pop --protocol sampled:100 --json
  llmrec evaluate --dataset ml-100k --scorer bpr --protocol sampled:100 --out runs/eval/bpr --set options.epochs=20
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from llmrec.data.canonical import DataConfig


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


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg

    p = sub.add_parser(
        "evaluate", help="evaluate a scorer on a candidate protocol", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", help="registered name or path")
    p.add_argument("--scorer", help="scorer spec: random, pop, itemknn, bpr, run:RUN_DIR, text:ENC[+ADAPTER], "
                   "llm:RANKER, hybrid:CONFIG.yaml")
    p.add_argument("--protocol", help="full | sampled:N[:pop] | candidates:FILE | nir | nir-uf:N | nir-if:N")
    p.add_argument("--phase", choices=["test", "valid"], help="which leave-one-out target (default test)")
    p.add_argument("--k", type=int_at_least(1), action="append", help="also report HR/NDCG at this K (repeatable)")
    p.add_argument("--seed", type=seed_arg, help="seed for sampled candidates, user sampling and the scorer")
    p.add_argument("--max-users", type=int_at_least(0, " (0 = all users)"),
                   help="evaluate a seeded sample of N users (0 = all)")
    p.add_argument("--llm", help="LLM backend for llm:* scorers (hf:smollm2-135m, openai:URL#model)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--out", help="write metrics.json, per_user.csv.gz, report.md and config.json here")
    add_data_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> EvaluateConfig:
    from llmrec.config import load_config

    base: dict[str, Any] = {}
    for key in ("dataset", "scorer", "protocol", "phase", "seed", "max_users", "llm"):
        value = getattr(args, key, None)
        if value is not None:
            base[key] = value
    cfg = load_config(EvaluateConfig, args.config, args.overrides, base=base)
    if args.k:
        cfg.k = sorted(set(cfg.k) | set(args.k))
    return cfg


def run(args: argparse.Namespace) -> int:
    from llmrec.config import to_dict
    from llmrec.errors import ConfigError

    cfg = build_config(args)
    if not cfg.dataset:
        raise ConfigError("no data set given: use --dataset NAME|PATH (or `dataset:` in --config)")
    result = run_evaluation(cfg, args.data_dir)
    if args.out:
        result.config = {**to_dict(cfg), "data_dir": args.data_dir}
        result.save(args.out)
        print(f"llmrec: wrote {args.out}/metrics.json, report.md, per_user.csv.gz", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(result.to_markdown())
    return 0


def run_evaluation(cfg: EvaluateConfig, data_dir: str | None = None) -> Any:
    """Load, split, build candidates, fit the scorer, evaluate: the whole `llmrec evaluate` as a function."""
    import time

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
