"""Checkpoints: model weights as safetensors + a JSON manifest (model config, data set, sha256), written atomically.

A run folder holds
    model.safetensors / model.json   the encoder (best weights of the last stage that validated) and what it
                                     needs to be rebuilt and checked: model name + options, n_items, data set,
                                     split hash, the file's sha256
    state.safetensors / state.json   everything to resume after an interruption: model, objectives, optimizer,
                                     RNG, stage/epoch counters (rewritten after every epoch)
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

from llmrec.errors import CheckpointError
from llmrec.io import atomic_write, atomic_write_json, sha256_file

MODEL_FILE = "model.safetensors"
MODEL_INFO = "model.json"
STATE_FILE = "state.safetensors"
STATE_INFO = "state.json"
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
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (is {path.parent} a training run folder?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: corrupted (expected a JSON object)")
    return data


# ------------------------------------------------------------------------------------------------ model
def save_model(run_dir: str | Path, model: nn.Module, info: dict[str, Any]) -> None:
    """model.safetensors + model.json. `info` holds at least dataset, split_hash (and any task fields)."""
    from llmrec.models import model_options

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
    from llmrec.errors import ConfigError
    from llmrec.models import build_model

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


# ------------------------------------------------------------------------------------------ train state
def save_state(run_dir: str | Path, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    run_dir = Path(run_dir)
    sha = save_tensors(run_dir / STATE_FILE, tensors, {"format": FORMAT})
    atomic_write_json(run_dir / STATE_INFO, {"format": FORMAT, **info, "sha256": sha})


def load_state(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The resume state of a run, or None when the run has none yet."""
    run_dir = Path(run_dir)
    if not (run_dir / STATE_INFO).is_file():
        return None
    info = read_json(run_dir / STATE_INFO)
    return load_tensors(run_dir / STATE_FILE, info.get("sha256")), info


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors (for safetensors) and plain values (for JSON)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        plain["state"][str(idx)] = {}
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                plain["state"][str(idx)][key] = val
    return tensors, plain


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for idx, vals in plain["state"].items():
        state[int(idx)] = dict(vals)
    for name, t in tensors.items():
        if not name.startswith("optim."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = t
    try:
        opt.load_state_dict({"state": state, "param_groups": plain["param_groups"]})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"optimizer state does not fit this run ({e})") from None
