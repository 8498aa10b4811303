"""The `vllm:` backend: the vLLM engine inside this process (`pip install 'llmrec[vllm]'`, GPU machines).

Imported only when a `vllm:` spec is used; `import llmrec` never imports vllm. On CPU-only machines use a
server instead (`llmrec serve-llm`, then `openai:<url>`), since the CPU build of vLLM lives in its own venv.
Scripts that create this backend need an `if __name__ == "__main__":` guard (vLLM spawns worker processes).

Prompts go in as token ids rendered with the model's chat template (the convention in `llmrec.llm.base`), so
the numbers match `hf:` and `openai:` for the same weights. `vllm:<model>+<adapter folder>` serves a LoRA adapter
made by `llmrec tune-llm` (manifest and base weights checked first): the engine starts with LoRA enabled at the
adapter's rank and every request carries the adapter (`LoRARequest`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from llmrec.errors import BackendError
from llmrec.llm.base import (
    Completion,
    ContinuationScore,
    GenerationParams,
    LabelScores,
    LoglikResult,
    OnResult,
    Prompt,
    Usage,
    is_chat,
)
from llmrec.llm.models import resolve_model
from llmrec.llm.openai_compat import WIDE_TOP_LOGPROBS


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise BackendError(
            "vllm: the vllm package is not installed in this environment; install it with "
            "pip install 'llmrec[vllm]' (GPU), or start a server with `llmrec serve-llm` and use openai:<url>"
        ) from None
    return vllm


def sampling_params(
    vllm: Any,
    params: GenerationParams | None = None,
    *,
    logprobs: int | None = None,
    prompt_logprobs: int | None = None,
) -> Any:
    """The engine's SamplingParams for our params, in one place (checked against vLLM 0.32: structured outputs
    are `structured_outputs=StructuredOutputsParams(choice=…|json=…)`; `guided_decoding` is gone)."""
    from vllm.sampling_params import StructuredOutputsParams

    p = params or GenerationParams(max_tokens=1)
    kw: dict[str, Any] = dict(max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p)
    if p.stop:
        kw["stop"] = list(p.stop)
    if not p.greedy:
        kw["seed"] = p.seed
    if p.choices is not None:
        kw["structured_outputs"] = StructuredOutputsParams(choice=list(p.choices))
    elif p.json_schema is not None:
        kw["structured_outputs"] = StructuredOutputsParams(json=p.json_schema)
    if logprobs is not None:
        kw["logprobs"] = logprobs
    if prompt_logprobs is not None:
        kw["prompt_logprobs"] = prompt_logprobs
    return vllm.SamplingParams(**kw)


class VLLMBackend:
    """vLLM `LLM` engine in-process. `model`: alias, folder or hub id; `engine_options` go to `vllm.LLM`
    (e.g. dtype="bfloat16", max_model_len=4096, gpu_memory_utilization=0.8, enable_lora=True)."""

    def __init__(self, model: str, *, top_logprobs: int = WIDE_TOP_LOGPROBS, **engine_options: Any) -> None:
        from llmrec.llm.lora_llm import split_spec

        self._vllm = _import_vllm()
        base, adapter = split_spec(model)
        path = resolve_model(base)
        engine_options.setdefault("max_logprobs", max(top_logprobs, 20))  # see score_labels
        self.lora: Any = None
        adapter_key = ""
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            from llmrec.llm.lora_llm import read_llm_manifest, vllm_max_rank
            from llmrec.llm.serve import lora_modules

            name, folder, rank = lora_modules([adapter], path)[0]
            engine_options.setdefault("enable_lora", True)
            engine_options.setdefault("max_lora_rank", vllm_max_rank([rank]))
            self.lora = LoRARequest(name, 1, folder)
            adapter_key = "+lora:" + read_llm_manifest(folder)["files"]["adapter_model.safetensors"][:16]
        self.llm = self._vllm.LLM(model=path, **engine_options)
        self.tokenizer = self.llm.get_tokenizer()
        self.name = f"vllm:{model}"
        self.cache_id = f"vllm:{base}{adapter_key}"
        self.context_length = int(self.llm.llm_engine.model_config.max_model_len)
        self.top_logprobs = int(top_logprobs)
        self.usage = Usage()

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        if is_chat(prompt):
            msgs = [{"role": m["role"], "content": m["content"]} for m in prompt]  # type: ignore[union-attr]
            text = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            return list(self.tokenizer(text, add_special_tokens=False).input_ids)
        return list(self.tokenizer(str(prompt)).input_ids)

    def text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.prompt_ids(prompt))

    def _run(self, rows: list[list[int]], sp: Any) -> list[Any]:
        prompts = [{"prompt_token_ids": r} for r in rows]
        return self.llm.generate(prompts, sp, use_tqdm=False, lora_request=self.lora)

    def generate(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams | None = None,
        on_result: OnResult | None = None,
    ) -> list[Completion]:
        params = params or GenerationParams()
        rows = [self.prompt_ids(p) for p in prompts]
        t0 = time.perf_counter()
        outs = self._run(rows, sampling_params(self._vllm, params))
        latency = (time.perf_counter() - t0) / max(1, len(rows))
        res = []
        for i, (row, o) in enumerate(zip(rows, outs)):
            g = o.outputs[0]
            c = Completion(
                text=g.text,
                prompt_tokens=len(row),
                completion_tokens=len(g.token_ids),
                latency_s=latency,
                finish_reason="length" if g.finish_reason == "length" else "stop",
            )
            self.usage.record(
                "generate", prompt_tokens=len(row), completion_tokens=len(g.token_ids), latency_s=latency
            )
            res.append(c)
            if on_result is not None:
                on_result(i, c)
        return res

    def _label_ids(self, labels: Sequence[str]) -> list[int]:
        ids = []
        for lab in labels:
            t = self.text_ids(lab)
            if len(t) != 1:
                raise BackendError(
                    f"{self.name}: label {lab!r} is {len(t)} tokens; labels must be single tokens"
                )
            ids.append(t[0])
        return ids

    def _prompt_logprobs(self, rows: list[list[int]], starts: list[int]) -> list[list[float]]:
        """Log-probs of each row's own tokens from position starts[i] on (position 0 has none)."""
        outs = self._run(rows, sampling_params(self._vllm, prompt_logprobs=0))
        return [
            [o.prompt_logprobs[p][row[p]].logprob for p in range(max(1, start), len(row))]
            for row, start, o in zip(rows, starts, outs)
        ]

    def score_labels(
        self, prompts: Sequence[Prompt], labels: Sequence[str], on_result: OnResult | None = None
    ) -> list[LabelScores]:
        lab = self._label_ids(labels)
        rows = [self.prompt_ids(p) for p in prompts]
        t0 = time.perf_counter()
        outs = self._run(rows, sampling_params(self._vllm, logprobs=self.top_logprobs))
        table = [[(o.outputs[0].logprobs[0].get(t)) for t in lab] for o in outs]
        missing = [(i, c) for i, r in enumerate(table) for c, v in enumerate(r) if v is None]
        if missing:  # outside the top-k: exact log-prob of each label as the next token
            exact = self._prompt_logprobs(
                [rows[i] + [lab[c]] for i, c in missing], [len(rows[i]) for i, _ in missing]
            )
            for (i, c), lp in zip(missing, exact):
                table[i][c] = lp[-1]
        latency = (time.perf_counter() - t0) / max(1, len(rows))
        res = []
        for i, (row, r) in enumerate(zip(rows, table)):
            vals = [float(v if isinstance(v, float) else v.logprob) for v in r]  # type: ignore[union-attr]
            s = LabelScores(labels=list(labels), logprobs=vals, prompt_tokens=len(row), latency_s=latency)
            self.usage.record("score_labels", prompt_tokens=len(row), latency_s=latency)
            res.append(s)
            if on_result is not None:
                on_result(i, s)
        return res

    def loglik(self, prefix: Prompt, continuations: Sequence[str]) -> LoglikResult:
        pre = self.prompt_ids(prefix)
        conts = [self.text_ids(c) for c in continuations]
        t0 = time.perf_counter()
        idx = [j for j, c in enumerate(conts) if c]
        rows = self._prompt_logprobs([pre + conts[j] for j in idx], [len(pre)] * len(idx)) if idx else []
        scores: list[list[float]] = [[] for _ in conts]
        for j, r in zip(idx, rows):
            scores[j] = [float(x) for x in r]
        latency = time.perf_counter() - t0
        self.usage.record("loglik", prompt_tokens=len(pre) + sum(len(c) for c in conts), latency_s=latency)
        return LoglikResult(
            scores=[
                ContinuationScore(text=t, logprob=float(sum(s)), token_logprobs=s)
                for t, s in zip(continuations, scores)
            ],
            prompt_tokens=len(pre),
            latency_s=latency,
        )

    def close(self) -> None:
        del self.llm
