"""Text item encoders: sentence-transformers embeddings of item sentences, LoRA adapters tuned on a domain's
training interactions, and text-based user encoders (zero-shot recency mean, trained UniSRec-style model).

Heavy libraries (sentence-transformers, peft) are imported when a model is loaded, not here.
"""

from llmrec.encoders.lora import (
    LoraTuneConfig,
    load_adapter,
    merge_adapter,
    read_manifest,
    save_adapter,
    tune_encoder,
)
from llmrec.encoders.text_encoder import ENCODER_ALIASES, TextEncoder, resolve_model
from llmrec.encoders.text_user import TextSeqConfig, TextSeqUserModel, recency_mean, train_text_seq

__all__ = [
    "ENCODER_ALIASES",
    "LoraTuneConfig",
    "TextEncoder",
    "TextSeqConfig",
    "TextSeqUserModel",
    "load_adapter",
    "merge_adapter",
    "read_manifest",
    "recency_mean",
    "resolve_model",
    "save_adapter",
    "train_text_seq",
    "tune_encoder",
]
