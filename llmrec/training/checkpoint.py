"""The resume state of a training run: everything to continue after an interruption, written atomically.

A run folder holds, beside the encoder (`model.safetensors` / `model.json`, see `llmrec.models.checkpoint`),
    state.safetensors / state.json   model, objectives, optimizer, RNG and the run's position (stage, epoch,
                                     best validation; rewritten after every epoch)
Loading checks the recorded sha256, so a damaged state is a `CheckpointError`, never a silently different run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from llmrec.errors import CheckpointError
from llmrec.io import atomic_write_json
from llmrec.models.checkpoint import FORMAT, load_tensors, read_json, save_tensors

STATE_FILE = "state.safetensors"
STATE_INFO = "state.json"


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
