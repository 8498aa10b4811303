"""Arguments and output shared by several subcommands (data folder, config file, --set overrides, run results)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the raw data sets (default: $LLMREC_DATA_DIR, else ../shared/data beside the "
        "checkout, else the user cache, filled by download)",
    )


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="FILE.yaml", help="YAML config (unknown keys are errors)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set data.k_core=5 (repeatable)",
    )


def int_at_least(minimum: int, note: str = "") -> Callable[[str], int]:
    """An argparse `type=` for integers ≥ `minimum`; a bad value is a one-line error naming the argument."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}{note}, got {value}")
        return value

    parse.__name__ = f"integer ≥ {minimum}"  # argparse names the type in its messages
    return parse


seed_arg = int_at_least(0)


def print_result(result: dict[str, Any], as_json: bool) -> None:
    """A training run's result.json: the whole JSON, or one line (best validation, test HR/NDCG@10)."""
    if as_json:
        print(json.dumps(result, indent=2))
        return
    test = result.get("test") or {}
    best = result.get("best_valid_NDCG@10")
    parts = [f"run {result.get('run_dir')}"]
    if best is not None:
        parts.append(f"best valid NDCG@10 {best:.4f}")
    if test:
        parts.append("test " + ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k.startswith(("HR@10", "NDCG@10"))))
    print("; ".join(parts))
    print(f"llmrec: wrote {result.get('run_dir')}/result.json", file=sys.stderr)
