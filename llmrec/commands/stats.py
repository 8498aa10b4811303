"""`llmrec stats DATASET`: users, items, interactions and sequence lengths of a data set or a path."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field

from llmrec.data.canonical import DataConfig


@dataclass
class StatsConfig:
    data: DataConfig = field(default_factory=DataConfig)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args

    p = sub.add_parser("stats", help="data set statistics", description=__doc__)
    p.add_argument("dataset", help="a registered name (see `llmrec datasets`) or a path")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_data_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.config import load_config
    from llmrec.data import leave_one_out, load_dataset

    cfg = load_config(StatsConfig, args.config, args.overrides)
    ds = load_dataset(args.dataset, args.data_dir, cfg.data)
    st = ds.stats()
    split = leave_one_out(ds)
    st["eval_users_test"] = int(len(split.eval_users("test")))
    st["eval_users_valid"] = int(len(split.eval_users("valid")))
    st["split_hash"] = split.hash
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0
    width = max(len(k) for k in st)
    for k, v in st.items():
        if isinstance(v, float):
            v = f"{v:.6g}"
        print(f"{k:<{width}}  {v}")
    return 0
