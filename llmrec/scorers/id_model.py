"""Scorer `run:RUN_DIR`: a trained ID model (SASRec, BERT4Rec) from a training run folder.

    llmrec evaluate --dataset beauty --scorer run:runs/sasrec-beauty --protocol full

Scoring is `llmrec.models.scoring.ModelScorer`'s (the training loop validates through it, so validation and the
final evaluation share one code path); this file adds where the model came from and refuses a data set other
than the one it was trained on.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from llmrec.errors import CheckpointError
from llmrec.models.checkpoint import check_compatible, load_model
from llmrec.models.scoring import ModelScorer
from llmrec.scorers.base import SCORERS, ScorerContext
from llmrec.types import Dataset, Split


class IDModelScorer(ModelScorer):
    """A `ModelScorer` with the model's saved info (data set, split hash), checked in `fit`."""

    def __init__(self, model: nn.Module, info: dict | None = None, name: str = "id_model", where: str = "") -> None:
        super().__init__(model, name, where)
        self.info = info or {}

    @classmethod
    def from_run(cls, run_dir: str | Path) -> IDModelScorer:
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


@SCORERS.register("run", help="a trained ID model: run:RUN_DIR (from llmrec pretrain / finetune)")
def _run_scorer(arg: str | None, ctx: ScorerContext) -> IDModelScorer:
    if not arg:
        raise CheckpointError("scorer run needs a run folder: --scorer run:RUN_DIR")
    return IDModelScorer.from_run(arg)
