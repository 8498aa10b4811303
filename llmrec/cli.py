"""`llmrec` command line: thin — parse, build a config, call the library, print.

Each subcommand lives in `llmrec/commands/<name>.py` with `add_parser(subparsers)`; they are discovered here,
so a new command is one file. Handlers import heavy libraries inside the function, keeping `--help` fast.
Any `LLMRecError`, and any argument argparse refuses, becomes one line on stderr (`llmrec: error: …`) and exit
code 2. Warnings raised while a command runs are collected and printed after it, each once and on one line
(`llmrec: warning: …`), so an error line is never buried under the warnings that led up to it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from typing import NoReturn

from llmrec import __version__
from llmrec.errors import LLMRecError


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line errors; subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]  # "llmrec evaluate" -> "evaluate"
        where = f"{command}: " if command else ""
        self.exit(2, f"llmrec: error: {where}{_one_line(message)} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version exit 0 as usual; a refused argument returns 2 (line printed)
        if e.code in (0, None):
            raise
        return int(e.code) if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings(record=True) as caught:  # keeps the active filters; shown below instead
        try:
            code = int(args.func(args) or 0)
        except LLMRecError as e:
            print(f"llmrec: error: {_one_line(str(e))}", file=sys.stderr)
            code = 2
        except KeyboardInterrupt:
            print("llmrec: interrupted (finished work is saved; rerun the command to resume)", file=sys.stderr)
            code = 130
        except BrokenPipeError:
            return 0
    print_warnings(caught)
    return code


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) if "\n" in text else text


def print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Each distinct warning once, on one line, in the order first raised."""
    seen: set[tuple[type, str]] = set()
    for w in caught:
        text = _one_line(str(w.message))
        if (w.category, text) in seen:
            continue
        seen.add((w.category, text))
        kind = "" if w.category is UserWarning else f"{w.category.__name__}: "
        print(f"llmrec: warning: {kind}{text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
