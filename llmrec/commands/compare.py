"""`llmrec compare RUN_DIR…`: compare evaluation runs that ranked the same candidates.

Writes report.md, report.json and PNG plots (the metric per method with 95% bootstrap CIs; quality against
latency and tokens) with paired significance tests over users. Runs with different candidate hashes are refused.

Example:
  llmrec evaluate --dataset ml-100k --scorer pop --protocol sampled:100 --out runs/cmp/pop
  llmrec evaluate --dataset ml-100k --scorer itemknn --protocol sampled:100 --out runs/cmp/itemknn
  llmrec compare runs/cmp/pop runs/cmp/itemknn --out runs/cmp/report
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import seed_arg

    p = sub.add_parser("compare", help="compare evaluation runs (tables, plots, significance)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders written by `llmrec evaluate --out`")
    p.add_argument("--out", default=None, help="report folder (default: print the Markdown only)")
    p.add_argument("--metric", default="NDCG@10", help="metric for the significance tests (default NDCG@10)")
    p.add_argument("--reference", default=None, help="test every method against this run (default: the best)")
    p.add_argument("--title", default="Comparison", help="report title")
    p.add_argument("--seed", type=seed_arg, default=0, help="bootstrap seed")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.evaluation.compare import compare_runs, to_markdown, write_report

    metrics = tuple(dict.fromkeys(("HR@10", "NDCG@10", "MRR", args.metric)))
    report = compare_runs(args.runs, args.metric, metrics, args.reference, args.seed)
    if args.out:
        written = write_report(report, args.out, args.title, plots=not args.no_plots)
        print(f"llmrec: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    print(to_markdown(report, args.title))
    return 0
