"""LoRA instruction tuning of the causal LM on a domain's interactions: `tune_llm(dataset, split, cfg, out)`.

The recipe (P5's multitask prompts, LlamaRec's verbalizer ranker, TALLRec's yes/no; METHODS.md, "Tuning the
LLM on domain data"): examples from the task families of `llmrec.tune_llm.examples`, peft LoRA on the causal LM,
cross-entropy on the answer tokens only (the prompt's tokens are masked), AdamW with a linear warm-up and decay.

Tokens follow the backends' convention (`llmrec.llm.base`): the chat prompt rendered with the model's chat
template and the generation prompt, tokenized without special tokens; the answer tokenized on its own and
appended, then the end-of-turn token — so the letter a verbalizer reads (`score_labels`) and the title the
likelihood ranker reads (`loglik`) are exactly the tokens trained here.

Batches are length-bucketed (examples sorted by length inside groups of `bucket` batches, then the batches
shuffled): little padding. Every step's loss goes to `steps.jsonl` in the run folder (the loss curve). After
every `save_every` steps and every epoch the run folder (`--work`, default
`runs/tune-llm/<name>`) gets `checkpoint.pt` (LoRA weights, optimiser, scheduler, position, log) written
atomically; rerunning the same command resumes where it stopped and ends with the same weights as an
uninterrupted run (same thread count). After every epoch the validation examples (each sampled user's
validation item) give the answer loss per family, the verbalizer's target rank among the letters and its label
bias; the epoch with the lowest mean answer loss is the adapter written to `out` (`llmrec.llm.lora_llm` format,
manifest checked on load). The test items are never rendered into any prompt.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.config import save_config, to_dict
from llmrec.errors import CheckpointError, ConfigError
from llmrec.io import atomic_write, atomic_write_json
from llmrec.tune_llm.examples import (
    FAMILIES,
    Example,
    ExampleSpec,
    build_examples,
    check_spec,
    examples_summary,
)
from llmrec.types import Dataset, Split

CHECKPOINT = "checkpoint.pt"


@dataclass
class LLMTuneConfig:
    """`llmrec tune-llm` settings (`--config FILE.yaml`, `--set key=value`). Defaults: the shipped ml-100k adapter."""

    llm: str = "smollm2-135m"  # base model: an alias, a local transformers folder or a hub id in the hub cache
    tasks: list[str] = field(default_factory=lambda: ["direct", "sequential", "rating", "yesno"])
    per_user: dict[str, int] = field(default_factory=lambda: {"direct": 1, "sequential": 2, "rating": 1, "yesno": 1})
    holdout: dict[str, str] = field(default_factory=lambda: {f: FAMILIES[f].holdout for f in FAMILIES})
    retriever: str = "itemknn"  # scorer giving direct / yes-no negatives, fitted on the training part (run:DIR)
    negatives: str = "retriever"  # retriever | uniform | mixed (either, per example)
    candidates: int = 20  # C of direct examples (LlamaRec: 20)
    history_len: int = 10  # history titles shown per example
    next_k: int = 1  # sequential: titles per answer
    max_examples: int = 0  # 0 = every rendered example; else a seeded sample of this many
    valid_users: int = 100  # users whose validation item picks the epoch
    epochs: int = 1
    batch_size: int = 8
    lr: float = 5e-4
    warmup: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    r: int = 8
    alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    max_length: int = 1024  # tokens per example; longer histories lose their oldest titles
    bucket: int = 16  # batches per length-sorted group
    save_every: int = 50  # steps between checkpoints
    save_dtype: str = "float32"  # float32 | bfloat16 (halves the adapter file)
    threads: int = 0  # torch threads (0 = torch's default)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("tasks: give at least one of " + ", ".join(FAMILIES))
        bad = [t for t in self.tasks if t not in FAMILIES]
        if bad:
            raise ValueError(f"tasks: unknown {bad[0]!r}; choose from {', '.join(FAMILIES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.r < 1 or self.save_every < 1 or self.bucket < 1:
            raise ValueError("epochs, batch_size, r, save_every and bucket must be ≥ 1")
        if self.lr <= 0 or not 0 <= self.warmup < 1:
            raise ValueError("need lr > 0 and 0 ≤ warmup < 1")
        if self.save_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"save_dtype must be float32 or bfloat16, got {self.save_dtype!r}")
        if self.max_examples < 0 or self.valid_users < 0 or self.threads < 0:
            raise ValueError("max_examples, valid_users and threads must be ≥ 0")


@dataclass
class Encoded:
    """An example as token ids: `ids` prompt + answer + end of turn; the loss reads positions ≥ `answer_start`."""

    ids: list[int]
    answer_start: int
    family: str
    target_col: int = -1
    n_candidates: int = 0


class Tokens:
    """The backends' tokenization convention for (prompt, answer) pairs."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() \
            else tokenizer.eos_token_id

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(self.tok(text, add_special_tokens=False).input_ids)

    def answer_ids(self, answer: str) -> list[int]:
        return list(self.tok(answer, add_special_tokens=False).input_ids)

    def encode(self, ex: Example, max_length: int) -> Encoded | None:
        """None if even the answer and an empty history do not fit (the caller counts them)."""
        ans = self.answer_ids(ex.answer) + ([self.end] if self.end is not None else [])
        msgs = ex.messages
        ids = self.prompt_ids(msgs)
        if len(ids) + len(ans) > max_length:
            return None
        return Encoded(ids + ans, len(ids), ex.family, ex.target_col, ex.n_candidates)

    def letter_ids(self, n: int) -> list[int]:
        from llmrec.prompts import letters

        out = []
        for lab in letters(n):
            t = self.answer_ids(lab)
            if len(t) != 1:
                raise ConfigError(f"label {lab!r} is {len(t)} tokens for this tokenizer; direct needs single tokens")
            out.append(t[0])
        return out


def batches_for_epoch(lengths: np.ndarray, batch_size: int, bucket: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches: a seeded permutation, sorted by length inside groups of `bucket` batches, batches shuffled."""
    perm = rng.permutation(len(lengths))
    group = batch_size * bucket
    parts = [perm[s : s + group][np.argsort(lengths[perm[s : s + group]], kind="stable")]
             for s in range(0, len(perm), group)]
    order = np.concatenate(parts) if parts else perm
    out = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def collate(rows: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (B, T) input ids, attention mask and labels (-100 on the prompt and the padding)."""
    T = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    labels = torch.full((len(rows), T), -100, dtype=torch.long)
    for b, r in enumerate(rows):
        n = len(r.ids)
        ids[b, :n] = torch.tensor(r.ids)
        mask[b, :n] = 1
        labels[b, r.answer_start : n] = ids[b, r.answer_start : n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def answer_logprobs(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-softmax (M, V) at the M positions that predict an answer token, their targets (M,), the row of each
    (M,)). The LM head runs only at those positions: the vocabulary projection of every prompt position (a
    fifth of a small model's forward FLOPs, and a (B, T, V) tensor) is never computed."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = base.get_decoder(), base.get_output_embeddings()  # the transformer body and the LM head
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    tgt = batch["labels"][:, 1:]  # (B, T-1): position t predicts token t+1
    where = (tgt != -100).nonzero(as_tuple=True)  # (M,) rows, (M,) positions
    h = hidden[:, :-1][where]  # (M, H)
    lp = torch.log_softmax(head(h).float(), dim=-1)  # (M, V)
    return lp, tgt[where], where[0]


def answer_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean negative log-likelihood per answer token over the batch."""
    lp, tgt, _ = answer_logprobs(model, batch)
    return -lp.gather(1, tgt[:, None]).mean()


@torch.no_grad()
def validate(model: Any, rows: list[Encoded], tokens: Tokens, pad_id: int, batch_size: int) -> dict[str, Any]:
    """Answer loss per family (mean per answer token), and for `direct` the target's rank among the letters (by
    the first answer token's log-probability), HR@1 and the label bias (how often each letter position wins)."""
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    ranks: list[int] = []
    wins: dict[int, int] = {}
    letter_ids: dict[int, list[int]] = {}
    order = np.argsort([len(r.ids) for r in rows], kind="stable")
    for s in range(0, len(rows), batch_size):
        chunk = [rows[i] for i in order[s : s + batch_size]]
        batch = collate(chunk, pad_id)
        lp, tgt, row_of = answer_logprobs(model, batch)  # (M, V), (M,), (M,)
        nll = -lp.gather(1, tgt[:, None])[:, 0]  # (M,)
        first = torch.ones_like(row_of, dtype=torch.bool)
        first[1:] = row_of[1:] != row_of[:-1]  # the first answer token of each row
        for b, r in enumerate(chunk):
            mine = row_of == b
            sums[r.family] = sums.get(r.family, 0.0) + float(nll[mine].sum())
            counts[r.family] = counts.get(r.family, 0) + int(mine.sum())
            if r.family == "direct" and r.n_candidates:
                lab = letter_ids.setdefault(r.n_candidates, tokens.letter_ids(r.n_candidates))
                at = int((mine & first).nonzero()[0])
                scores = lp[at, lab]  # (C,) log p(letter | prompt)
                ranks.append(int((scores >= scores[r.target_col]).sum()) - 1)  # pessimistic, 0-based
                w = int(scores.argmax())
                wins[w] = wins.get(w, 0) + 1
    model.train(was)
    loss = {f: sums[f] / max(counts[f], 1) for f in sums}
    out: dict[str, Any] = {"loss": {f: round(v, 4) for f, v in loss.items()},
                           "mean_loss": round(float(np.mean(list(loss.values()))), 4) if loss else None}
    if ranks:
        rk = np.array(ranks)
        out["direct"] = {"HR@1": round(float(np.mean(rk < 1)), 4), "HR@5": round(float(np.mean(rk < 5)), 4),
                         "NDCG@10": round(float(np.mean(np.where(rk < 10, 1 / np.log2(rk + 2), 0))), 4),
                         "label_bias": {chr(65 + k): v for k, v in sorted(wins.items())}}
    return out


def _run_fingerprint(cfg: LLMTuneConfig, split: Split, base_fp: str) -> str:
    import hashlib

    keep = {k: v for k, v in to_dict(cfg).items() if k not in ("threads", "save_every")}
    return hashlib.sha256(json.dumps([keep, split.hash, base_fp], sort_keys=True).encode()).hexdigest()[:16]


def _log(msg: str) -> None:
    print(f"llmrec: {msg}", file=sys.stderr, flush=True)


def tune_llm(
    dataset: Dataset,
    split: Split,
    cfg: LLMTuneConfig,
    out_dir: str | Path,
    work_dir: str | Path | None = None,
    progress: bool | None = None,
    stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Tune, validate every epoch, write the best adapter to `out_dir`; returns the manifest. See the module doc.

    stop_after_steps: return after this many optimiser steps in this call (state saved), as an interruption."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from llmrec.llm.lora_llm import local_model_dir, save_llm_adapter, weights_fingerprint
    from llmrec.llm.models import resolve_model
    from llmrec.scorers import ScorerContext, build_scorer

    out = Path(out_dir)
    work = Path(work_dir) if work_dir else Path("runs") / "tune-llm" / out.name
    work.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    hf_logging.set_verbosity_error()
    base_dir = local_model_dir(resolve_model(cfg.llm))
    base_fp = weights_fingerprint(base_dir)
    run_fp = _run_fingerprint(cfg, split, base_fp)
    state_path = work / CHECKPOINT
    state = None
    if state_path.is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: say which file
            raise CheckpointError(f"{state_path}: unreadable checkpoint ({type(e).__name__}); delete it to start over") from None
        if state.get("fingerprint") != run_fp:
            raise ConfigError(f"{work} holds a tuning run with other settings, data or base model; use another "
                              f"--work folder or delete it to start over")
        _log(f"resuming {work} at epoch {state['epoch'] + 1} step {state['step_in_epoch']}")
    save_config(cfg, work / "config.yaml")

    # ---- examples (seeded: a resumed run renders the same ones) ----------------------------------------------
    spec = ExampleSpec(cfg.tasks, dict(cfg.per_user), dict(cfg.holdout), cfg.history_len, cfg.candidates,
                       cfg.negatives, cfg.next_k, dataset.domain.item_kind, dataset.domain.action)
    tasks = check_spec(spec, dataset)
    retriever = None
    if cfg.negatives in ("retriever", "mixed") and any(t in ("direct", "yesno") for t in tasks):
        retriever = build_scorer(cfg.retriever, ScorerContext(seed=cfg.seed))
        retriever.fit(dataset, split)
    t0 = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, 1])
    train_ex = build_examples(dataset, split, spec, retriever, rng, "train", progress=_log if show else None)
    if cfg.max_examples and len(train_ex) > cfg.max_examples:
        keep = np.sort(np.random.default_rng([cfg.seed, 2]).choice(len(train_ex), cfg.max_examples, replace=False))
        train_ex = [train_ex[i] for i in keep]
    valid_ex = build_examples(dataset, split, spec, retriever, np.random.default_rng([cfg.seed, 3]), "valid",
                              cfg.valid_users) if cfg.valid_users else []
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tokens = Tokens(tok)
    enc_train = [e for e in (tokens.encode(x, cfg.max_length) for x in train_ex) if e is not None]
    enc_valid = [e for e in (tokens.encode(x, cfg.max_length) for x in valid_ex) if e is not None]
    dropped = len(train_ex) - len(enc_train)
    if not enc_train:
        raise ConfigError("no training example fits max_length; raise max_length or lower history_len")
    n_tok = int(sum(len(e.ids) for e in enc_train))
    summary = {**examples_summary(train_ex), "tokens": n_tok, "too_long": dropped,
               "valid_examples": len(enc_valid), "seconds": round(time.perf_counter() - t0, 1),
               "notes": spec.extra.get("notes", [])}
    if show:
        _log(f"{len(enc_train)} examples ({n_tok} tokens; {summary['by_family']}), {len(enc_valid)} validation")

    # ---- model ------------------------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    model.config.use_cache = False
    lcfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    try:
        model = get_peft_model(model, lcfg)
    except ValueError as e:
        raise ConfigError(f"target_modules {cfg.target_modules}: {str(e).splitlines()[0]}") from None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    lengths = np.array([len(e.ids) for e in enc_train])
    steps_per_epoch = math.ceil(len(enc_train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up to lr, then linear decay to 0
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    log: list[dict[str, Any]] = []
    epoch, step_in_epoch, best = 0, 0, math.inf
    seconds = 0.0
    if state is not None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, state["lora"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"])
        epoch, step_in_epoch, best = state["epoch"], state["step_in_epoch"], state["best"]
        log, seconds = state["log"], state["seconds"]

    def save_state() -> None:
        from peft import get_peft_model_state_dict

        blob = {"fingerprint": run_fp, "lora": get_peft_model_state_dict(model), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch,
                "step_in_epoch": step_in_epoch, "best": best, "log": log, "seconds": seconds}
        atomic_write(state_path, lambda p: torch.save(blob, p))

    manifest_base = {
        "base_model": cfg.llm, "base_fingerprint": base_fp,
        "dataset": {"name": dataset.name, "split_hash": split.hash},
        "tasks": tasks,
        "templates": {t: {"trained": spec.seen_templates(t), "held_out": spec.holdout.get(t, FAMILIES[t].holdout)}
                      for t in tasks},
        "config": to_dict(cfg), "examples": summary,
        "peft": {"r": cfg.r, "alpha": cfg.alpha, "target_modules": list(cfg.target_modules),
                 "trainable_params": int(sum(p.numel() for p in params))},
    }
    steps_this_call = 0
    if state is None and enc_valid:  # the base model's numbers on the same validation examples: the baseline
        t1 = time.perf_counter()
        row0 = {"epoch": 0, "valid": validate(model, enc_valid, tokens, tok.pad_token_id, cfg.batch_size),
                "valid_seconds": round(time.perf_counter() - t1, 1)}
        log.append(row0)
        with open(work / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row0) + "\n")
    model.train()
    while epoch < cfg.epochs:
        gen = np.random.default_rng([cfg.seed, 100 + epoch])
        batches = batches_for_epoch(lengths, cfg.batch_size, cfg.bucket, gen)
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(batches), initial=step_in_epoch, desc=f"tune-llm epoch {epoch + 1}/{cfg.epochs}",
                       unit="step", file=sys.stderr, dynamic_ncols=True)
        run_loss, run_n, ex_done, tok_done = 0.0, 0, 0, 0
        t_ep = t_mark = time.perf_counter()  # epoch start (rates) / last time `seconds` was brought up to date
        for bi in range(step_in_epoch, len(batches)):
            if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                if bar is not None:
                    bar.close()
                seconds += time.perf_counter() - t_mark
                save_state()
                return {"interrupted": True, "epoch": epoch, "step_in_epoch": step_in_epoch}
            torch.manual_seed(hash((cfg.seed, epoch, bi)) & 0x7FFFFFFF)  # LoRA dropout: the same on resume
            rows = [enc_train[i] for i in batches[bi]]
            batch = collate(rows, tok.pad_token_id)
            loss = answer_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            step_in_epoch, steps_this_call = bi + 1, steps_this_call + 1
            run_loss, run_n = run_loss + float(loss.detach()), run_n + 1
            ex_done += len(rows)
            tok_done += int(batch["attention_mask"].sum())
            with open(work / "steps.jsonl", "a", encoding="utf-8") as f:  # the loss curve, one line per step
                f.write(json.dumps({"epoch": epoch + 1, "step": bi + 1, "loss": round(float(loss.detach()), 4),
                                    "lr": sched.get_last_lr()[0],
                                    "families": dict(Counter(r.family for r in rows))}) + "\n")
            if bar is not None:
                el = time.perf_counter() - t_ep
                bar.set_postfix(loss=f"{run_loss / run_n:.3f}", ex_s=f"{ex_done / el:.2f}", tok_s=f"{tok_done / el:.0f}")
                bar.update(1)
            if step_in_epoch % cfg.save_every == 0:
                seconds += time.perf_counter() - t_mark
                t_mark = time.perf_counter()
                save_state()
        if bar is not None:
            bar.close()
        seconds += time.perf_counter() - t_mark
        el = max(time.perf_counter() - t_ep, 1e-9)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": round(run_loss / max(run_n, 1), 4),
                               "steps": len(batches), "seconds": round(seconds, 1),
                               "examples_per_s": round(ex_done / el, 3), "tokens_per_s": round(tok_done / el, 1)}
        if enc_valid:
            t1 = time.perf_counter()
            row["valid"] = validate(model, enc_valid, tokens, tok.pad_token_id, cfg.batch_size)
            row["valid_seconds"] = round(time.perf_counter() - t1, 1)
        log.append(row)
        with open(work / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        score = row.get("valid", {}).get("mean_loss")
        score = math.inf if score is None else score
        if score < best or (not enc_valid and epoch + 1 == cfg.epochs):
            best = score
            save_llm_adapter(model, out, {**manifest_base, "training": {"log": log, "best_epoch": epoch + 1},
                                          "metrics": {"valid": row.get("valid")}}, cfg.save_dtype)
            if show:
                _log(f"epoch {epoch + 1}: validation mean answer loss {score:.4f}, the best so far: saved {out}")
        epoch, step_in_epoch = epoch + 1, 0
        save_state()
    # the final manifest: the whole log, the chosen epoch, examples/s over the run
    from llmrec.llm.lora_llm import read_llm_manifest

    m = read_llm_manifest(out)
    m["training"] = {"log": log, "best_epoch": m["training"]["best_epoch"], "seconds": round(seconds, 1),
                     "examples_per_s": round(len(enc_train) * cfg.epochs / max(seconds, 1e-9), 3),
                     "tokens_per_s": round(n_tok * cfg.epochs / max(seconds, 1e-9), 1),
                     "torch_threads": torch.get_num_threads()}
    atomic_write_json(out / "manifest.json", m)
    return m
