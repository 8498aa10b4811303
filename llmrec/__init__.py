"""llmrec: LLM-augmented recommendation — one evaluation interface for ID models, text encoders and LLM rankers.

`import llmrec` stays light: heavy dependencies (transformers, sentence-transformers, openai) are imported by
the modules that use them, and vLLM only when a `vllm:` backend is asked for.
"""

from llmrec.errors import LLMRecError

__version__ = "0.1.0"
__all__ = ["LLMRecError", "__version__"]
