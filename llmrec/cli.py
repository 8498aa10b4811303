"""`llmrec` command line: thin — parse, build a config, call the library, print.

Each subcommand lives in `llmrec/commands/<name>.py` with `add_parser(subparsers)`; they are discovered here,
so a new command is one file. Handlers import heavy libraries inside the function, keeping `--help` fast.
Any `LLMRecError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from llmrec import __version__
from llmrec.errors import LLMRecError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmrec",
        description="LLM-augmented recommendation: prompt-based rankers, LoRA-tuned text encoders and "
        "pre-trained ID user models, evaluated on the same saved candidate sets.",
    )
    parser.add_argument("--version", action="version", version=f"llmrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import llmrec.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"llmrec.commands.{info.name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LLMRecError as e:
        print(f"llmrec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llmrec: interrupted (finished work is saved; rerun the command to resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
