"""LLM backends behind one interface (`LLMBackend` in `base.py`), chosen by a spec string:

    hf:<alias|folder|hub id>      transformers in this process (default `hf:smollm2-135m`)
    openai:<base_url>[#model]     a vLLM / OpenAI-compatible server (`llmrec serve-llm` starts one)
    vllm:<model>                  the vLLM engine in this process (`pip install 'llmrec[vllm]'`, GPU machines)

`make_backend(spec, cache=...)` builds one, optionally wrapped by the SQLite response cache. Backend modules are
imported only when their prefix is used, so `import llmrec.llm` needs neither torch nor openai nor vllm.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from llmrec.errors import BackendError
from llmrec.llm.base import (
    Completion,
    ContinuationScore,
    GenerationParams,
    LabelScores,
    LLMBackend,
    LoglikResult,
    Pricing,
    Prompt,
    Usage,
)
from llmrec.registry import Registry

DEFAULT_SPEC = "hf:smollm2-135m"

# prefix → "module:Class"; the class takes (arg, **options)
BACKENDS: Registry[str] = Registry("LLM backend prefix")
BACKENDS.add("hf", "llmrec.llm.hf_local:HFBackend", "transformers in-process (default hf:smollm2-135m)")
BACKENDS.add(
    "openai", "llmrec.llm.openai_compat:OpenAIBackend", "OpenAI-compatible server: openai:<url>[#model]"
)
BACKENDS.add("vllm", "llmrec.llm.vllm_engine:VLLMBackend", "vLLM engine in-process: vllm:<model>")


def parse_spec(spec: str | None) -> tuple[str, str, dict[str, Any]]:
    """`"openai:http://h:8000/v1#m"` → ("openai", "http://h:8000/v1", {"model": "m"}); `"hf"` → default model."""
    spec = (spec or DEFAULT_SPEC).strip()
    prefix, sep, arg = spec.partition(":")
    if not sep and prefix not in BACKENDS:
        raise BackendError(f"LLM spec {spec!r} needs a prefix: one of {', '.join(f'{p}:' for p in BACKENDS)}")
    BACKENDS.get(prefix)  # unknown prefix → UnknownNameError listing the valid ones
    opts: dict[str, Any] = {}
    if prefix == "openai":
        arg, _, model = arg.partition("#")
        if not arg:
            raise BackendError("openai: needs a server URL, e.g. openai:http://127.0.0.1:8000/v1#model")
        if model:
            opts["model"] = model
        return prefix, arg, opts
    if not arg:
        if prefix == "hf":
            arg = DEFAULT_SPEC.split(":", 1)[1]
        else:
            raise BackendError(f"{prefix}: needs a model, e.g. {prefix}:<model folder or hub id>")
    return prefix, arg, opts


def make_backend(
    spec: str | None = None, *, cache: str | Path | bool | None = None, **options: Any
) -> LLMBackend:
    """Build the backend for `spec` (default `hf:smollm2-135m`).

    cache: a SQLite file path (or True for `<cache dir>/llm-responses.sqlite`) → responses are reused across
        runs (`CachedBackend`); None/False → every call goes to the model.
    options: passed to the backend class (e.g. batch_size=, device= for hf; concurrency=, timeout_s=,
        max_retries= for openai).
    """
    prefix, arg, opts = parse_spec(spec)
    module, _, cls_name = BACKENDS.get(prefix).partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    try:
        backend: LLMBackend = cls(arg, **{**opts, **options})
    except TypeError as e:
        raise BackendError(f"{prefix}: bad backend option ({e})") from None
    if cache:
        from llmrec.io import cache_dir
        from llmrec.llm.cache import CachedBackend, ResponseCache

        path = cache_dir() / "llm-responses.sqlite" if cache is True else Path(cache)
        return CachedBackend(backend, ResponseCache(path))  # type: ignore[return-value]
    return backend


__all__ = [
    "BACKENDS",
    "DEFAULT_SPEC",
    "Completion",
    "ContinuationScore",
    "GenerationParams",
    "LLMBackend",
    "LabelScores",
    "LoglikResult",
    "Pricing",
    "Prompt",
    "Usage",
    "make_backend",
    "parse_spec",
]
