"""Scorer `run:RUN_DIR`: a trained ID model (SASRec, BERT4Rec) from a training run folder.

    llmrec evaluate --dataset beauty --scorer run:runs/sasrec-beauty --protocol full

`IDModelScorer` also wraps a model in memory (the training loop validates through it, so validation and the
final evaluation share one code path). Histories longer than the model's max_len keep their most recent items.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from llmrec.errors import CheckpointError, DataError
from llmrec.scorers.base import SCORERS, ScorerContext
from llmrec.types import Dataset, ScoreBatch, Split


class IDModelScorer:
    """Scores = the model's next-item logits for the user's history: (B, N+1) for full ranking (column 0, the
    padding id, is -inf) or (B, C) gathered at the candidate ids (padding candidates -inf)."""

    def __init__(self, model: nn.Module, info: dict | None = None, name: str = "id_model", where: str = "") -> None:
        self.model = model
        self.info = info or {}
        self.name = name
        self.where = where or name
        self.batch_size = 512

    @classmethod
    def from_run(cls, run_dir: str | Path) -> IDModelScorer:
        from llmrec.training.checkpoint import load_model

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise CheckpointError(f"{run_dir}: no such run folder (expected model.safetensors + model.json)")
        model, info = load_model(run_dir)
        if info.get("task", "next-item") != "next-item":
            raise CheckpointError(f"{run_dir}: a {info['task']!r} attribute run, not a next-item recommender")
        return cls(model, info, name=f"run:{run_dir.name}", where=str(run_dir))

    def fit(self, dataset: Dataset, split: Split) -> None:
        """Nothing to train; refuses a data set other than the model's: another catalogue size, or (for a saved
        run, which records it) another split hash — the same item count with other ids, users or filters."""
        from llmrec.training.checkpoint import check_compatible

        check_compatible({"dataset": self.info.get("dataset", "?"), "n_items": self.model.n_items},
                         split.n_items, dataset.name, self.where)
        saved = self.info.get("split_hash")
        if saved is not None and saved != split.hash:
            trained_on = self.info.get("dataset_spec") or self.info.get("dataset", "?")
            raise CheckpointError(
                f"{self.where}: trained on data set {trained_on!r} (split {saved}), but data set {dataset.name!r} "
                f"has split {split.hash}: item ids would not match — evaluate it with --dataset {trained_on} and "
                f"the same data options, or train a model on this data set"
            )

    @torch.no_grad()
    def score(self, batch: ScoreBatch) -> torch.Tensor:
        model = self.model
        was_training = model.training
        model.eval()
        try:
            hist = batch.history[:, -model.max_len :].to(torch.long)  # (B, T)
            if hist.numel() and int(hist.max()) > model.n_items:
                raise DataError(f"{self.where}: history holds item ids above the model's {model.n_items} items")
            nonzero = (hist != 0).any(dim=0).nonzero()
            if len(nonzero):
                hist = hist[:, int(nonzero[0]) :]  # drop all-padding columns (positions count from the right)
            logits = model.item_logits(model.encode(hist))  # (B, N)
        finally:
            model.train(was_training)
        low = torch.finfo(logits.dtype).min  # finite: the evaluator masks column 0 and padding anyway
        full = torch.cat([torch.full_like(logits[:, :1], low), logits], dim=1)  # (B, N+1)
        if batch.candidates is None:
            return full
        cand = batch.candidates.to(torch.long)  # (B, C)
        out = full.gather(1, cand.clamp(0, model.n_items))
        return out.masked_fill((cand <= 0) | (cand > model.n_items), low)


@SCORERS.register("run", help="a trained ID model: run:RUN_DIR (from llmrec pretrain / finetune)")
def _run_scorer(arg: str | None, ctx: ScorerContext) -> IDModelScorer:
    if not arg:
        raise CheckpointError("scorer run needs a run folder: --scorer run:RUN_DIR")
    return IDModelScorer.from_run(arg)
