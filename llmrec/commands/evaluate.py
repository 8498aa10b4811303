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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrec.pipelines.evaluate import EvaluateConfig


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
    from llmrec.pipelines.evaluate import EvaluateConfig

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
    from llmrec.pipelines.evaluate import run_evaluation

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
