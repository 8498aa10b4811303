"""`llmrec experiment CONFIG.yaml`: run an experiment end to end — preparation steps (training), then each table's
methods on its candidate protocol, then the comparison reports (Markdown, JSON, plots) under results_dir.

Resumable: rerunning skips finished steps and evaluations. Example:
  llmrec experiment eval/configs/zero_shot_vs_pretrained.yaml
  llmrec experiment eval/configs/zero_shot_vs_pretrained.yaml --only full
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_data_args

    p = sub.add_parser("experiment", help="run an experiment config end to end", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="experiment YAML (see eval/configs/)")
    p.add_argument("--only", action="append", help="run only this table (repeatable)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set runs_dir=runs/x")
    add_data_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.experiment import load_experiment, run_experiment

    cfg = load_experiment(args.config, args.overrides)
    run_experiment(cfg, args.data_dir, args.only, args.config)
    return 0
