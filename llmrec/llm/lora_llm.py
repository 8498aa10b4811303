"""LoRA adapters of the causal LM (`llmrec tune-llm`): the folder format, its checks, and loading onto a model.

An adapter folder (`adapters/<name>/`) holds peft's `adapter_config.json` + `adapter_model.safetensors` — the
format vLLM serves with `--enable-lora --lora-modules NAME=PATH` — and llmrec's `manifest.json`:

    format          "llmrec-llm-adapter/1"
    base_model      the base model spec (`smollm2-135m`) and `base_fingerprint`, the sha256 of its weights
    dataset         name and split hash of the data it was tuned on
    tasks, templates the task families, the templates trained on and the one held out of each family
    config, training, metrics   the tuning settings, the loss log and the validation numbers
    files           sha256 of every peft file (a corrupted or edited folder raises CheckpointError)

`load_llm_adapter(model, folder, base_path)` checks all of it before peft reads a byte: the files' hashes, and
that the adapter was tuned on these weights (`base_fingerprint` against the base model folder being loaded).
Specs name an adapter after a `+`: `hf:smollm2-135m+adapters/NAME`, `vllm:MODEL+adapters/NAME`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from llmrec.errors import CheckpointError

FORMAT = "llmrec-llm-adapter/1"
MANIFEST = "manifest.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# vLLM's --max-lora-rank takes one of these (vllm.config.lora: possible_max_ranks)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def split_spec(model: str) -> tuple[str, str | None]:
    """`"smollm2-135m+adapters/x"` → ("smollm2-135m", "adapters/x"); no `+` → (model, None)."""
    base, sep, adapter = model.partition("+")
    if sep and not adapter:
        raise CheckpointError(f"model spec {model!r}: nothing after '+'; expected BASE+ADAPTER_FOLDER")
    return base, (adapter or None)


def weights_fingerprint(model_dir: str | Path) -> str:
    """sha256 over the sha256 of every `*.safetensors` / `*.bin` weight file of a model folder (sorted by name).

    Cached beside the other caches, keyed by each file's path, size and mtime, so a 14 GB model is hashed once."""
    from llmrec.io import atomic_write_json, cache_dir

    folder = Path(model_dir)
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        raise CheckpointError(f"{folder}: no weight files (*.safetensors, *.bin) to fingerprint")
    store = cache_dir() / "fingerprints.json"
    try:
        known = json.loads(store.read_text()) if store.is_file() else {}
    except (OSError, ValueError):
        known = {}
    parts, changed = [], False
    for p in files:
        st = p.stat()
        key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if key not in known:
            known[key] = file_sha256(p)
            changed = True
        parts.append(f"{p.name}:{known[key]}")
    if changed:
        try:
            atomic_write_json(store, known)
        except OSError:
            pass  # a read-only cache only costs the hashing next time
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def local_model_dir(resolved: str) -> Path:
    """The folder holding a model's weights: `resolved` itself (a converted alias or a local folder), or the hub
    cache's snapshot of a hub id (no download)."""
    path = Path(resolved)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(resolved, local_files_only=True))
    except Exception as e:  # noqa: BLE001 - any hub error means: no local copy
        raise CheckpointError(f"model {resolved!r}: LoRA adapters need its weights on disk ({type(e).__name__}); "
                              f"download it once or pass a local folder") from None


def read_llm_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest, after checking the folder holds every file with the recorded sha256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such adapter folder")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {MANIFEST}; not an llmrec LLM adapter (make one with `llmrec tune-llm`)") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from None
    if m.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {m.get('format')!r}, expected {FORMAT!r} (an LLM adapter of llmrec)")
    for name in ADAPTER_FILES:
        f = folder / name
        if not f.is_file():
            raise CheckpointError(f"{folder}: {name} is missing; the adapter folder is incomplete")
        want = m.get("files", {}).get(name)
        if want != file_sha256(f):
            raise CheckpointError(f"{f}: sha256 differs from the manifest; the file is corrupted or was edited "
                                  f"(re-run `llmrec tune-llm` to rebuild it)")
    return m


def adapter_rank(folder: str | Path) -> int:
    """LoRA rank r of a peft adapter folder."""
    try:
        cfg = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
        return int(cfg["r"])
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{folder}: cannot read the LoRA rank from adapter_config.json ({e})") from None


def vllm_max_rank(ranks: list[int]) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that covers every adapter's rank."""
    need = max(ranks)
    for r in VLLM_LORA_RANKS:
        if r >= need:
            return r
    raise CheckpointError(f"LoRA rank {need} is above vLLM's largest --max-lora-rank {VLLM_LORA_RANKS[-1]}")


def check_base(manifest: dict[str, Any], base_dir: str | Path, folder: str | Path) -> None:
    """CheckpointError unless the adapter was tuned on the weights in `base_dir`."""
    want = manifest.get("base_fingerprint")
    got = weights_fingerprint(base_dir)
    if want != got:
        raise CheckpointError(
            f"{folder}: tuned on base model {manifest.get('base_model')!r} (weights {str(want)[:12]}), not on the "
            f"weights in {base_dir} ({got[:12]}); use the base model it was tuned on"
        )


def load_llm_adapter(model: Any, folder: str | Path, base_dir: str | Path, merge: bool = True) -> tuple[Any, dict[str, Any]]:
    """(model with the adapter, manifest). `merge`: fold the LoRA weights into the base weights (the same
    outputs up to float rounding, no extra cost per token); otherwise a peft model that can be trained on."""
    from peft import PeftModel

    m = read_llm_manifest(folder)
    check_base(m, local_model_dir(str(base_dir)), folder)
    try:
        peft_model = PeftModel.from_pretrained(model, str(folder), is_trainable=not merge)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{folder}: peft cannot load the adapter ({first})") from None
    return (peft_model.merge_and_unload() if merge else peft_model), m


def save_llm_adapter(peft_model: Any, out_dir: str | Path, manifest: dict[str, Any], dtype: str = "float32") -> Path:
    """Write the peft files and the manifest (with their sha256) into `out_dir` atomically: a temporary sibling
    folder renamed over the old one, so a reader never sees half an adapter."""
    import shutil
    import tempfile

    import torch

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        state = None
        if dtype != "float32":
            from peft import get_peft_model_state_dict

            state = {k: v.to(getattr(torch, dtype)) for k, v in get_peft_model_state_dict(peft_model).items()}
        peft_model.save_pretrained(str(tmp), state_dict=state, safe_serialization=True)
        for extra in tmp.iterdir():  # peft may add a README; the folder holds exactly the format's files
            if extra.name not in ADAPTER_FILES:
                extra.unlink() if extra.is_file() else shutil.rmtree(extra)
        full = {"format": FORMAT, **manifest, "files": {n: file_sha256(tmp / n) for n in ADAPTER_FILES}}
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
