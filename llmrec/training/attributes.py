"""Transfer to user-attribute prediction (the downstream tasks of the AdaptSSR line of work) on ml-100k.

A head (one linear layer) on the encoder's user vector `encode(sequence)` predicts one attribute of
`dataset.users`; encoder and head are fine-tuned together with cross-entropy. Users are split once into
train / valid / test (70 / 10 / 20 %, a fixed seed independent of the run's seed), so every run — with or
without pre-training — is scored on the same users. The model input is the user's whole sequence (its most
recent max_len items). Selection: the epoch with the best validation metric; reported: its test metric.

Tasks (ml-100k `u.user`): gender (M/F; AUC), age (7 groups as in MovieLens-1M: <18, 18-24, 25-34, 35-44,
45-49, 50-55, 56+; accuracy), occupation (21 classes; accuracy).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.errors import ConfigError, DataError
from llmrec.io import atomic_write_json
from llmrec.types import Dataset, Split, pad_left

TASKS = ("gender", "age", "occupation")
AGE_BINS = [18, 25, 35, 45, 50, 56]  # MovieLens-1M age groups: <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+


@dataclass
class AttributeConfig:
    """Fine-tuning an encoder + a linear head for one user attribute."""

    task: str = "gender"
    epochs: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    patience: int = 10
    freeze_encoder: bool = False  # linear probe instead of fine-tuning
    seed: int = 0
    split_seed: int = 0  # the user split; keep fixed to compare runs
    threads: int = 2

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be ≥ 1")


def attribute_labels(dataset: Dataset, task: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(users, labels, class names) for the users that have the attribute."""
    if dataset.users is None or task not in {"gender": "gender", "age": "age", "occupation": "occupation"}:
        raise DataError(f"{dataset.name}: no user attributes for task {task!r} (ml-100k has gender, age, occupation)")
    col = {"gender": "gender", "age": "age", "occupation": "occupation"}[task]
    if col not in dataset.users.columns:
        raise DataError(f"{dataset.name}: user attribute {col!r} missing (columns: {list(dataset.users.columns)})")
    frame = dataset.users[col].dropna()
    users = frame.index.to_numpy().astype(np.int64)
    if task == "age":
        labels = np.digitize(frame.to_numpy().astype(np.int64), AGE_BINS)
        names = ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
    else:
        names = sorted(frame.astype(str).unique())
        labels = np.searchsorted(np.array(names), frame.astype(str).to_numpy())
    return users, labels.astype(np.int64), names


def user_split(users: np.ndarray, seed: int = 0, fractions=(0.7, 0.1, 0.2)) -> dict[str, np.ndarray]:
    """A fixed, seeded partition of users into train / valid / test."""
    rng = np.random.default_rng(seed)
    perm = users[rng.permutation(len(users))]
    n_train = int(round(fractions[0] * len(users)))
    n_valid = int(round(fractions[1] * len(users)))
    return {"train": np.sort(perm[:n_train]), "valid": np.sort(perm[n_train : n_train + n_valid]),
            "test": np.sort(perm[n_train + n_valid :])}


def _metric(task: str, logits: torch.Tensor, labels: torch.Tensor) -> float:
    from llmrec.evaluation.metrics import auc_binary

    if task == "gender":
        probs = torch.softmax(logits, dim=-1)[:, 1].numpy()
        return float(auc_binary(probs, labels.numpy()))
    return float((logits.argmax(dim=-1) == labels).float().mean())


class AttributeModel(nn.Module):
    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.hidden, n_classes)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.encode(seq))  # (B, classes)


def finetune_attribute(
    encoder: nn.Module,
    dataset: Dataset,
    split: Split,
    cfg: AttributeConfig,
    out_dir: str | Path | None = None,
    progress: bool | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune `encoder` + a head on `cfg.task`; returns (and writes to out_dir/result.json) the metrics."""
    from llmrec.models.checkpoint import save_model, save_tensors

    torch.set_num_threads(cfg.threads)
    users, labels, names = attribute_labels(dataset, cfg.task)
    if len(names) < 2:
        raise ConfigError(f"task {cfg.task!r}: fewer than two classes on {dataset.name}")
    label_of = dict(zip(users.tolist(), labels.tolist()))
    parts = user_split(users, cfg.split_seed)
    T = encoder.max_len
    seqs = {k: torch.from_numpy(pad_left(split.items, split.indptr[u], split.indptr[u + 1], T)) for k, u in parts.items()}
    ys = {k: torch.tensor([label_of[int(x)] for x in u]) for k, u in parts.items()}
    torch.manual_seed(cfg.seed)
    model = AttributeModel(encoder, len(names))
    if cfg.freeze_encoder:
        for p in encoder.parameters():
            p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    metric_name = "AUC" if cfg.task == "gender" else "accuracy"
    best, best_epoch, bad, best_state = -1.0, -1, 0, None
    show = (sys.stderr.isatty() if progress is None else progress)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"finetune {cfg.task}", unit="epoch", file=sys.stderr)
    t0 = time.perf_counter()

    @torch.no_grad()
    def predict(part: str) -> torch.Tensor:
        model.eval()
        out = torch.cat([model(s) for s in seqs[part].split(512)])
        model.train()
        return out

    model.train()
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(ys["train"]), generator=gen)
        for idx in perm.split(cfg.batch_size):
            loss = F.cross_entropy(model(seqs["train"][idx]), ys["train"][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val = _metric(cfg.task, predict("valid"), ys["valid"])
        bad = 0 if val > best else bad + 1
        if val >= best:  # on a tie keep the later, longer-trained epoch (small validation sets saturate)
            best, best_epoch = val, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if bar is not None:
            bar.set_postfix({f"val_{metric_name}": f"{val:.4f}", "best": f"{best:.4f}"})
            bar.update(1)
        if bad >= cfg.patience:
            break
    if bar is not None:
        bar.close()
    assert best_state is not None
    model.load_state_dict(best_state)
    test = _metric(cfg.task, predict("test"), ys["test"])
    majority = float(np.mean(ys["test"].numpy() == np.bincount(ys["train"].numpy()).argmax()))
    result = {
        "task": cfg.task,
        "metric": metric_name,
        "valid": best,
        "test": test,
        "best_epoch": best_epoch,
        "majority_class_test_accuracy": majority,
        "n_users": {k: int(len(v)) for k, v in parts.items()},
        "classes": names,
        "seconds": round(time.perf_counter() - t0, 2),
        "split_seed": cfg.split_seed,
        "seed": cfg.seed,
        **(source or {}),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_model(out, encoder, {"dataset": dataset.name, "split_hash": split.hash, "task": cfg.task, **(source or {})})
        save_tensors(out / "head.safetensors", {k: v for k, v in model.head.state_dict().items()})
        atomic_write_json(out / "result.json", result)
    return result
