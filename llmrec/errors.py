"""User-facing errors: one line that names the file, line or field and what was expected.

The CLI prints `llmrec: error: <message>` and exits with code 2 for any `LLMRecError`; library callers catch
the subclasses. Anything else reaching the CLI is a bug and keeps its traceback.
"""

from __future__ import annotations


class LLMRecError(Exception):
    """Base class of every error a user can cause and fix (bad input, unknown names, missing files)."""


class DataError(LLMRecError):
    """A data file is missing, malformed, or empty after filtering."""


class ConfigError(LLMRecError):
    """A config file or `--set` override names an unknown key or a value of the wrong type."""


class UnknownNameError(LLMRecError):
    """A registry lookup failed; the message lists the valid names."""


class CheckpointError(LLMRecError):
    """A checkpoint or adapter is corrupted or belongs to another data set or model."""


class BackendError(LLMRecError):
    """An LLM backend could not be reached or answered with something unusable."""


class CacheError(LLMRecError):
    """A cache file (LLM responses, candidate sets) is corrupted or cannot be written; the message names the
    file and what to do (delete it, fix its permissions, or choose another cache)."""
