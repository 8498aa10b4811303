"""`python -m llmrec` = the `llmrec` command."""

import sys

from llmrec.cli import main

sys.exit(main())
