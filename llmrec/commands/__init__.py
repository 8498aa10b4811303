"""CLI subcommands, one module each with `add_parser(subparsers)`; discovered by `llmrec.cli`."""
