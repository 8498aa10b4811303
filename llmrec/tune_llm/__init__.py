"""LoRA tuning of the LLM on domain data (`llmrec tune-llm`): P5-style task families rendered from the prompt
files (`examples.py`) and the peft training loop with resumable checkpoints and a checked manifest (`train.py`).
The adapter format and its loading onto a model live with the LLM backends (`llmrec.llm.lora_llm`)."""

from llmrec.tune_llm.examples import FAMILIES, Example, ExampleSpec, build_examples
from llmrec.tune_llm.train import LLMTuneConfig, tune_llm

__all__ = ["FAMILIES", "Example", "ExampleSpec", "LLMTuneConfig", "build_examples", "tune_llm"]
