"""Data layer: registered loaders and generic formats → canonical Dataset → leave-one-out Split → item text
→ candidate sets (seeded, saved, hashed)."""

from llmrec.data.canonical import DataConfig
from llmrec.data.datasets import DATASETS, load_dataset
from llmrec.data.split import leave_one_out

__all__ = ["DATASETS", "DataConfig", "leave_one_out", "load_dataset"]
