"""Arguments shared by several subcommands (data folder, config file, --set overrides, output)."""

from __future__ import annotations

import argparse


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
