"""A deterministic fake LLM backend for ranker tests (a unique module name: no clash with other conftests).

Every call is recorded (`prompts`, `label_prompts`, `loglik_calls`); answers come from small functions of the
prompt text, so the same prompt always gets the same answer and tests can script what the model "says".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from llmrec.llm.base import (
    Completion,
    ContinuationScore,
    GenerationParams,
    LabelScores,
    LoglikResult,
    Prompt,
    Usage,
    prompt_to_json,
)


def prompt_text(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"[{m['role']}] {m['content']}" for m in prompt)


def last_user(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else [m["content"] for m in prompt if m["role"] == "user"][-1]


def stable(x: str) -> float:
    """A number in [0, 1) that depends only on the string."""
    return int(hashlib.sha256(x.encode()).hexdigest()[:8], 16) / 2**32


def numbered_lines(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\d+\. (.+)$", text, re.MULTILINE)]


def default_reply(prompt: Prompt) -> str:
    """Listwise prompts: the numbered candidates in reverse; NIR step 3: pairs for the last 3 candidates;
    steps 1 and 2: fixed text."""
    user = last_user(prompt)
    if "Step 3" in user:
        text = prompt_text(prompt)
        cands = text.split("Candidate Set (candidate ")[1].split(": ", 1)[1].split(".\n")[0].split(", ")
        return "\n".join(f"{i}. Some Watched Movie - {c}" for i, c in enumerate(reversed(cands[-3:]), 1))
    if "Step 2" in user:
        return "1. A watched movie"
    if "Step 1" in user:
        return "I like action movies."
    cands = user.split("choose next:\n")[1].split("\n\n")[0] if "choose next:\n" in user else ""
    titles = numbered_lines(cands)
    return "\n".join(f"{i}. {t}" for i, t in enumerate(reversed(titles), 1))


class FakeBackend:
    name = "fake:test"
    cache_id = "fake:test"

    def __init__(
        self,
        reply: Callable[[Prompt], str] = default_reply,
        label_logprob: Callable[[Prompt, str, int], float] | None = None,
        context_length: int = 100_000,
    ) -> None:
        self.reply = reply
        self.label_logprob = label_logprob or (lambda p, lab, i: -0.1 * i - stable(prompt_text(p) + lab))
        self.context_length = context_length
        self.usage = Usage()
        self.prompts: list[Prompt] = []  # every generate prompt, in call order
        self.generate_calls: list[int] = []  # batch size of each generate call
        self.label_prompts: list[Prompt] = []
        self.label_calls: list[int] = []
        self.loglik_calls: list[tuple[Prompt, list[str]]] = []

    def count_tokens(self, prompt: Prompt) -> int:
        return len(prompt_text(prompt).split())

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams | None = None,
                 on_result: Any = None) -> list[Completion]:
        params = params or GenerationParams()
        self.generate_calls.append(len(prompts))
        out = []
        for i, p in enumerate(prompts):
            self.prompts.append(prompt_to_json(p))
            text = self.reply(p)
            words = text.split()
            if len(words) > params.max_tokens:
                text = " ".join(words[: params.max_tokens])
            c = Completion(text, self.count_tokens(p), min(len(words), params.max_tokens), 0.0)
            self.usage.record("generate", prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens)
            out.append(c)
            if on_result:
                on_result(i, c)
        return out

    def score_labels(self, prompts: Sequence[Prompt], labels: Sequence[str], on_result: Any = None) -> list[LabelScores]:
        self.label_calls.append(len(prompts))
        out = []
        for p in prompts:
            self.label_prompts.append(prompt_to_json(p))
            lp = [self.label_logprob(p, lab, i) for i, lab in enumerate(labels)]
            self.usage.record("score_labels", prompt_tokens=self.count_tokens(p))
            out.append(LabelScores(list(labels), lp, self.count_tokens(p), 0.0))
        return out

    def loglik(self, prefix: Prompt, continuations: Sequence[str]) -> LoglikResult:
        self.loglik_calls.append((prompt_to_json(prefix), list(continuations)))
        scores = []
        for c in continuations:
            toks = [-1.0 - stable(prompt_text(prefix) + c + str(k)) for k in range(len(c.split()))]
            scores.append(ContinuationScore(c, sum(toks), toks))
        self.usage.record("loglik", prompt_tokens=self.count_tokens(prefix))
        return LoglikResult(scores, self.count_tokens(prefix), 0.0)

    def close(self) -> None:
        pass
