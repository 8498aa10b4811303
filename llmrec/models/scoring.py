"""An ID model in memory as a Scorer: next-item logits of each user's history, for full ranking or candidates.

The training loop validates through it and `scorers/id_model.py` (`run:RUN_DIR`) adds where a saved model came
from, so validation and the final evaluation share one code path. Histories longer than the model's max_len
keep their most recent items.
"""

from __future__ import annotations

import torch
from torch import nn

from llmrec.errors import DataError
from llmrec.types import Dataset, ScoreBatch, Split


class ModelScorer:
    """Scores = the model's next-item logits for the user's history: (B, N+1) for full ranking (column 0, the
    padding id, is the lowest finite float) or (B, C) gathered at the candidate ids (padding candidates too)."""

    def __init__(self, model: nn.Module, name: str = "id_model", where: str = "") -> None:
        self.model = model
        self.name = name
        self.where = where or name
        self.batch_size = 512

    def fit(self, dataset: Dataset, split: Split) -> None:
        """Nothing to train: the model is what it is."""

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
