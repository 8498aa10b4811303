"""Training ID user models: stages of objectives (loop.py), the resume state (checkpoint.py; the model's own
weights are `llmrec.models.checkpoint`), DDP via torchrun (distributed.py), training windows (windows.py) and
user-attribute heads for transfer (attributes.py)."""

from llmrec.training.loop import ObjectiveSpec, RunResult, StageConfig, TrainConfig, train

__all__ = ["ObjectiveSpec", "RunResult", "StageConfig", "TrainConfig", "train"]
