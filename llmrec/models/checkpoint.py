"""Model checkpoints: an ID model's weights as safetensors + a JSON manifest, written atomically and checked on load.

A run folder (from `llmrec pretrain` / `finetune`) holds
    model.safetensors / model.json   the encoder and what it needs to be rebuilt and checked: model name +
                                     options, n_items, data set, split hash, the file's sha256
(the resume state beside it is the training loop's business: `llmrec.training.checkpoint`).
Loading checks the hash (a corrupted or truncated file is a `CheckpointError`, never garbage weights) and
`check_compatible` refuses a checkpoint trained on a catalogue of another size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from llmrec.errors import CheckpointError, ConfigError
from llmrec.io import atomic_write, atomic_write_json, sha256_file
from llmrec.models import build_model, model_options

MODEL_FILE = "model.safetensors"
MODEL_INFO = "model.json"
FORMAT = "llmrec-checkpoint/1"


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Write tensors atomically; returns the file's sha256."""
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}  # no shared storage
    atomic_write(path, lambda p: save_file(clean, str(p), metadata=metadata or {}))
    return sha256_file(path)


def load_tensors(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file, checking its sha256 when given; any damage raises `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if sha256 is not None and sha256_file(path) != sha256:
        raise CheckpointError(f"{path}: corrupted checkpoint (sha256 does not match the one recorded at save time)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupted or unreadable checkpoint ({e})") from None


def read_json(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON manifest; missing or damaged is a `CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (is {path.parent} a training run folder?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: corrupted (expected a JSON object)")
    return data


def save_model(run_dir: str | Path, model: nn.Module, info: dict[str, Any]) -> None:
    """model.safetensors + model.json. `info` holds at least dataset, split_hash (and any task fields)."""
    run_dir = Path(run_dir)
    tensors = dict(model.state_dict())
    meta = {"format": FORMAT, "model": model.name, "n_items": str(model.n_items)}
    sha = save_tensors(run_dir / MODEL_FILE, tensors, meta)
    atomic_write_json(
        run_dir / MODEL_INFO,
        {"format": FORMAT, "model": model.name, "options": model_options(model), "n_items": model.n_items,
         **info, "sha256": sha},
    )


def read_model_info(run_dir: str | Path) -> dict[str, Any]:
    info = read_json(Path(run_dir) / MODEL_INFO)
    for key in ("model", "options", "n_items", "sha256"):
        if key not in info:
            raise CheckpointError(f"{Path(run_dir) / MODEL_INFO}: corrupted (missing {key!r})")
    return info


def load_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the encoder saved in `run_dir` → (model in eval mode, its info)."""
    run_dir = Path(run_dir)
    info = read_model_info(run_dir)
    tensors = load_tensors(run_dir / MODEL_FILE, info["sha256"])
    try:
        model = build_model(info["model"], int(info["n_items"]), info["options"])
    except ConfigError as e:
        raise CheckpointError(f"{run_dir / MODEL_INFO}: unusable model config ({e})") from None
    load_weights(model, tensors, str(run_dir / MODEL_FILE))
    model.eval()
    return model, info


def load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Load `tensors` into `model`, refusing (`CheckpointError`) missing, unexpected or misshapen entries."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: does not fit model {getattr(model, 'name', '?')} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{where}: tensor {k} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}")
    model.load_state_dict(tensors)


def check_compatible(info: dict[str, Any], n_items: int, dataset: str, where: str) -> None:
    """A model scores items 1..n_items of the data set it was trained on: refuse any other catalogue size."""
    if int(info["n_items"]) != int(n_items):
        raise CheckpointError(
            f"{where}: trained on data set {info.get('dataset', '?')!r} with {info['n_items']} items, "
            f"but data set {dataset!r} has {n_items} items — a checkpoint only fits the catalogue it was trained on"
        )
