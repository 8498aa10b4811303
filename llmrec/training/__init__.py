"""Training ID user models: stages of objectives (loop.py), checkpoints (checkpoint.py), DDP via torchrun
(distributed.py), training windows (windows.py) and user-attribute heads for transfer (attributes.py)."""

from llmrec.training.loop import ObjectiveSpec, RunResult, StageConfig, TrainConfig, train

__all__ = ["ObjectiveSpec", "RunResult", "StageConfig", "TrainConfig", "train"]
