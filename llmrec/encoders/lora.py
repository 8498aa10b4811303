"""LoRA (peft) fine-tuning of a text item encoder on a domain's training interactions, and adapter I/O.

Objectives (contrastive, in-batch negatives, temperature τ; see `llmrec.encoders.contrastive`):
- `next_item` (Recformer / UniSRec style): a user's training history → the next training item. The user
  vector is built exactly as the `text:` scorer's zero-shot user encoder builds it when it scores with the
  adapter later (`llmrec.encoders.text_user.recency_mean`): the recency-weighted (decay^age) mean of the item
  embeddings of the WHOLE history before the target (`history_len: 0`; a positive value keeps only the last
  N items, which scoring does not do), L2-normalised; and item sentences are cut at the same `max_length`
  (128 tokens) as the scorer's. On ml-100k no sentence reaches 64 tokens (the longest has 39), so the length
  only matters for catalogues with long texts.
- `cooc`: item–item co-occurrence, an item and one that follows it within a window in a training sequence.
- `dp` (Tiny-NewsRec's domain post-training): one text field of an item (e.g. the title) must pick out the
  item's other fields (e.g. genres) among the batch's.

Only the training part of the leave-one-out split is used (each user's sequence minus its validation and test
items); DP uses only items that occur in it. Validation targets are used only for the metrics in the manifest.

An adapter folder (`adapters/<name>/`) holds peft's `adapter_config.json` + `adapter_model.safetensors` and an
llmrec `manifest.json`: base model and its fingerprint, data set, split hash, objectives, hyper-parameters,
training log and metrics, and the sha256 of each file (a corrupted or edited folder raises CheckpointError).
Training writes `checkpoint.pt` (LoRA weights, optimiser, scheduler, epoch) atomically after every epoch; a
rerun of the same command resumes from it. Epoch e draws its examples and dropout from seed (seed, e), so an
interrupted and resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.config import to_dict
from llmrec.encoders.text_encoder import TextEncoder, file_sha256, texts_hash
from llmrec.errors import CheckpointError, ConfigError
from llmrec.io import atomic_write, atomic_write_json
from llmrec.types import Dataset, Split

MANIFEST = "manifest.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
CHECKPOINT = "checkpoint.pt"
FORMAT = "llmrec-text-adapter/1"
OBJECTIVES = ("next_item", "cooc", "dp")


@dataclass
class LoraTuneConfig:
    """LoRA fine-tuning of a text encoder. Defaults: the shipped ml-100k adapter's settings."""

    model: str = "minilm"  # base encoder: alias, local folder or hub id
    objectives: list[str] = field(default_factory=lambda: ["next_item"])  # any of next_item, cooc, dp
    weights: list[float] = field(default_factory=list)  # loss weight per objective (default 1 each)
    # LoRA on the attention query/value projections: 73,728 parameters at r=8 on MiniLM (~300 KB on disk).
    r: int = 8
    alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    epochs: int = 3
    batch_size: int = 32  # examples per step; in-batch negatives = batch_size - 1
    lr: float = 1e-3
    warmup: float = 0.05  # fraction of the steps with a linear warm-up, then linear decay to 0
    weight_decay: float = 0.0
    temperature: float = 0.05  # τ on cosine similarities
    history_len: int = 0  # next_item: 0 = the whole history (as the scorer), N = only the last N items
    decay: float = 0.9  # next_item: recency weight per step back (same as the zero-shot user encoder)
    history_grad: bool = False  # next_item: backprop through history items too (exact, ~8x slower on CPU)
    refresh_every: int = 50  # next_item without history_grad: recompute the item memory every N steps
    # next_item: "batch" (in-batch targets) or "catalog" (+ every other item from the memory, no gradient). On
    # ml-100k "catalog" diverged (loss rising over 3 epochs; valid sampled:100 NDCG@10 0.124 vs 0.157).
    negatives: str = "batch"
    samples_per_user: int = 4  # next_item / cooc: examples drawn per user per epoch
    cooc_window: int = 3  # cooc: the positive follows the anchor within this many positions
    dp_anchor: str = "title"  # dp: this field vs the item's other text fields
    max_length: int = 128  # tokens per item sentence in training (the text scorer's default too)
    grad_clip: float = 1.0
    seed: int = 0
    eval_protocols: list[str] = field(default_factory=lambda: ["full", "sampled:100"])  # validation metrics

    def __post_init__(self) -> None:
        bad = [o for o in self.objectives if o not in OBJECTIVES]
        if bad or not self.objectives:
            raise ValueError(f"objectives must be a non-empty list of {list(OBJECTIVES)}, got {self.objectives}")
        if self.weights and len(self.weights) != len(self.objectives):
            raise ValueError(f"weights has {len(self.weights)} entries for {len(self.objectives)} objectives")
        if self.r < 1 or self.batch_size < 2 or self.epochs < 0 or self.history_len < 0:
            raise ValueError("need r ≥ 1, batch_size ≥ 2 (in-batch negatives), epochs ≥ 0, history_len ≥ 0")
        if self.negatives not in ("batch", "catalog"):
            raise ValueError(f"negatives must be 'batch' or 'catalog', got {self.negatives!r}")
        if not 0 < self.temperature <= 10 or not 0 < self.decay <= 1:
            raise ValueError("need 0 < temperature ≤ 10 and 0 < decay ≤ 1")


# ---- adapters: attach, save, load, merge -------------------------------------------------------------------
def attach_lora(enc: TextEncoder, cfg: LoraTuneConfig) -> torch.nn.Module:
    """Wrap the encoder's HF model in a fresh trainable peft LoRA model (seeded init); returns the PeftModel."""
    from peft import LoraConfig, get_peft_model

    if enc.adapter is not None or _is_peft(enc.hf_model):
        raise CheckpointError("this encoder already carries an adapter; load the base model to train a new one")
    lcfg = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.lora_dropout, target_modules=list(cfg.target_modules),
        bias="none",
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 deprecation inside peft
        torch.manual_seed(cfg.seed)
        try:
            peft_model = get_peft_model(enc.hf_model, lcfg)
        except ValueError as e:  # e.g. target modules not found in this architecture
            raise ConfigError(f"LoRA on {enc.model_name!r}: {e}") from None
    peft_model.peft_config["default"].base_model_name_or_path = enc.model_name
    enc.hf_model = peft_model
    return peft_model


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def lora_parameters(enc: TextEncoder) -> dict[str, torch.nn.Parameter]:
    """The trainable (LoRA) parameters by name."""
    return {n: p for n, p in enc.hf_model.named_parameters() if p.requires_grad}


def save_adapter(enc: TextEncoder, out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write the peft files, then `manifest.json` (with their sha256) last: a folder without a manifest (or with
    files that do not match it) is an incomplete or damaged adapter."""
    if not _is_peft(enc.hf_model):
        raise CheckpointError("no adapter attached to this encoder")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".adapter.", dir=out))
    try:
        # save_embedding_layers=False: LoRA never touches the vocabulary (and peft would look up the base)
        enc.hf_model.save_pretrained(str(tmp), save_embedding_layers=False)
        for name in ADAPTER_FILES:
            if not (tmp / name).is_file():
                raise CheckpointError(f"peft did not write {name} (peft version {_version('peft')})")
        (out / MANIFEST).unlink(missing_ok=True)  # invalid until the new files are in place
        for name in ADAPTER_FILES:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest = {**manifest, "files": {name: file_sha256(out / name) for name in ADAPTER_FILES}}
    atomic_write_json(out / MANIFEST, manifest)
    return out


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The adapter's manifest, verified against the files; None for a plain peft folder without one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"adapter folder {folder} does not exist")
    missing = [n for n in ADAPTER_FILES if not (folder / n).is_file()]
    if missing:
        raise CheckpointError(
            f"{folder}: not a complete adapter, missing {', '.join(missing)} (an adapter folder holds "
            f"{', '.join(ADAPTER_FILES)} and {MANIFEST}; was training interrupted before the end?)"
        )
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an llmrec adapter manifest (expected format {FORMAT!r})")
    for name, sha in (manifest.get("files") or {}).items():
        got = file_sha256(folder / name) if (folder / name).is_file() else "missing"
        if got != sha:
            raise CheckpointError(
                f"{folder / name}: corrupted or modified (sha256 {got[:12]}…, the manifest records {str(sha)[:12]}…)"
            )
    return manifest


def adapter_fingerprint(folder: str | Path) -> str:
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        h.update(file_sha256(Path(folder) / name).encode())
    return h.hexdigest()[:16]


def load_adapter(enc: TextEncoder, folder: str | Path, merge: bool = False) -> dict[str, Any] | None:
    """Attach the adapter in `folder` to `enc` (frozen, for inference); returns its manifest.

    Raises CheckpointError for a missing, incomplete, corrupted or foreign adapter (another base model)."""
    from peft import PeftModel

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        warnings.warn(f"{folder}: a peft adapter without an llmrec manifest (no provenance, no checksums)",
                      stacklevel=2)
    elif manifest.get("base_fingerprint") and manifest["base_fingerprint"] != enc.model_key:
        raise CheckpointError(
            f"{folder}: adapter was trained on base model {manifest.get('base_model')!r} "
            f"(fingerprint {manifest['base_fingerprint']}), not on {enc.model_name!r} ({enc.model_key})"
        )
    if enc.adapter is not None or _is_peft(enc.hf_model):
        raise CheckpointError(f"{folder}: the encoder already carries adapter {enc.adapter}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = PeftModel.from_pretrained(enc.hf_model, str(folder), is_trainable=False)
    except Exception as e:  # noqa: BLE001 - safetensors/peft/torch raise many types for a damaged file
        raise CheckpointError(f"{folder}: could not load the adapter ({type(e).__name__}: {e})") from None
    _check_loaded(peft_model, folder)
    peft_model.eval()
    enc.hf_model = peft_model
    enc.adapter = str(folder)
    enc.adapter_key = adapter_fingerprint(folder)
    if merge:
        merge_adapter(enc)
    return manifest


def _check_loaded(peft_model: Any, folder: Path) -> None:
    """peft only warns when saved LoRA tensors do not fit the model; make that an error."""
    from safetensors.torch import load_file

    try:
        saved = load_file(str(folder / "adapter_model.safetensors"))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{folder}: could not read adapter_model.safetensors ({e})") from None
    own = {n for n, _ in peft_model.named_parameters() if "lora_" in n}
    if not saved or len(saved) != len(own):
        raise CheckpointError(
            f"{folder}: the adapter has {len(saved)} LoRA tensors, the model expects {len(own)} "
            f"(was it trained on another architecture?)"
        )


def merge_adapter(enc: TextEncoder) -> None:
    """Fold the LoRA weights into the base weights (faster inference; embeddings equal up to float rounding)."""
    if not _is_peft(enc.hf_model):
        raise CheckpointError("no adapter to merge")
    enc.hf_model = enc.hf_model.merge_and_unload()
    enc.merged = True


# ---- training -----------------------------------------------------------------------------------------------
def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def _run_fingerprint(cfg: LoraTuneConfig, dataset: Dataset, split: Split, base_key: str, texts_key: str) -> str:
    payload = json.dumps([to_dict(cfg), dataset.name, split.hash, base_key, texts_key], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _log(msg: str) -> None:
    print(f"llmrec: {msg}", file=sys.stderr, flush=True)


def tune_encoder(
    dataset: Dataset,
    split: Split,
    cfg: LoraTuneConfig,
    out_dir: str | Path,
    *,
    name: str | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    keep_checkpoint: bool = False,
    stop_after_epochs: int | None = None,
) -> dict[str, Any]:
    """Fine-tune a LoRA adapter on `split`'s training part and save it to `out_dir`; returns the manifest.

    Resumes from `out_dir/checkpoint.pt` when it belongs to the same run (config, data, split, base model);
    a finished adapter in `out_dir` is kept unless `overwrite`. `stop_after_epochs` ends the process early
    (after that many epochs in total, checkpoint written) — for tests of resumption.
    """
    from llmrec.data.item_text import item_sentences
    from llmrec.encoders import contrastive

    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    if (out / MANIFEST).is_file() and not ckpt_path.is_file() and not overwrite:
        raise CheckpointError(f"{out} already holds a trained adapter; pass --overwrite or choose another --out")
    show = sys.stderr.isatty() if progress is None else progress

    enc = TextEncoder.load(cfg.model, max_length=cfg.max_length)
    texts = item_sentences(dataset.items)
    run_key = _run_fingerprint(cfg, dataset, split, enc.model_key, texts_hash(texts))
    state = _read_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    if state is not None and state.get("run") != run_key and not overwrite:
        raise CheckpointError(
            f"{ckpt_path}: a checkpoint of a different run (another config, data set, split or base model); "
            f"use the same settings to resume, or --overwrite to start afresh"
        )
    valid_metrics: dict[str, Any] = {}
    if state is not None and not overwrite:
        valid_metrics = dict(state.get("valid_metrics") or {})
    elif cfg.eval_protocols:
        valid_metrics = {"base": validation_metrics(enc, dataset, split, cfg)}  # LoRA starts as the identity

    peft_model = attach_lora(enc, cfg)
    params = lora_parameters(enc)
    n_trainable = int(sum(p.numel() for p in params.values()))
    streams = contrastive.build_objectives(enc, dataset, split, cfg)
    steps_per_epoch = max(1, streams[0].steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(round(cfg.warmup * total_steps)))

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None and overwrite:
        _log(f"{ckpt_path}: discarding the checkpoint (--overwrite)")
    elif state is not None:
        _load_lora_state(peft_model, state["lora"], ckpt_path)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"])
        history = list(state["history"])
        _log(f"resuming {out} after epoch {start_epoch}/{cfg.epochs}")
    weights = cfg.weights or [1.0] * len(streams)
    _log(f"tuning {cfg.model} with LoRA r={cfg.r} on {','.join(cfg.target_modules)} ({n_trainable:,} parameters), "
         f"objectives {'+'.join(cfg.objectives)}, {cfg.epochs} epochs × {steps_per_epoch} steps")
    for epoch in range(start_epoch, cfg.epochs):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            return {"stopped_after_epoch": epoch}
        rng = np.random.default_rng([cfg.seed, epoch])
        batches = [s.epoch_batches(rng, steps_per_epoch) for s in streams]
        losses = np.zeros((steps_per_epoch, len(streams)))
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", file=sys.stderr)
        t0 = time.perf_counter()
        enc.st.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout masks: deterministic per epoch
            for step in range(steps_per_epoch):
                total = torch.zeros(())
                for k, (stream, w) in enumerate(zip(streams, weights)):
                    stream.before_step(step)
                    loss = stream.loss(batches[k][step])
                    losses[step, k] = loss.item()
                    total = total + w * loss
                opt.zero_grad(set_to_none=True)
                total.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.grad_clip)
                opt.step()
                sched.step()
                if bar is not None:
                    bar.set_postfix(loss=f"{total.item():.3f}")
                    bar.update(1)
        enc.st.eval()
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        entry = {"epoch": epoch + 1, "seconds": round(seconds, 2), "steps_per_s": round(steps_per_epoch / seconds, 3),
                 **{f"loss_{o}": round(float(losses[:, k].mean()), 4) for k, o in enumerate(cfg.objectives)}}
        history.append(entry)
        _log(f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(f"{k} {v}" for k, v in entry.items() if k != "epoch"))
        state = {"run": run_key, "epoch": epoch + 1, "lora": _lora_state(peft_model), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "history": history, "valid_metrics": valid_metrics}
        atomic_write(ckpt_path, lambda p, s=state: torch.save(s, p))

    if cfg.eval_protocols:
        valid_metrics["tuned"] = validation_metrics(enc, dataset, split, cfg)
    train_seconds = float(sum(h["seconds"] for h in history))
    n_steps = steps_per_epoch * len(history)
    manifest = {
        "format": FORMAT,
        "name": name or out.name,
        "base_model": cfg.model,
        "base_fingerprint": enc.model_key,
        "peft": {"type": "LORA", "r": cfg.r, "alpha": cfg.alpha, "dropout": cfg.lora_dropout,
                 "target_modules": list(cfg.target_modules), "trainable_params": n_trainable},
        "dataset": {"name": dataset.name, "source": Path(dataset.source).name, "users": dataset.n_users,
                    "items": dataset.n_items, "interactions": dataset.n_interactions,
                    "split": "leave-one-out by time; trained on each user's sequence minus the last two items",
                    "split_hash": split.hash, "text_fields": list(dataset.items.text_fields),
                    "item_texts_hash": texts_hash(texts)},
        "objective": list(cfg.objectives),
        "config": to_dict(cfg),
        "training": {"epochs": len(history), "steps": n_steps, "seconds": round(train_seconds, 1),
                     "steps_per_s": round(n_steps / max(train_seconds, 1e-9), 3), "log": history,
                     "threads": torch.get_num_threads()},
        "metrics": {"valid": valid_metrics} if valid_metrics else {},
        "versions": {"llmrec": _version("llmrec"), "torch": torch.__version__, "peft": _version("peft"),
                     "sentence_transformers": _version("sentence-transformers"),
                     "transformers": _version("transformers")},
    }
    save_adapter(enc, out, manifest)
    if not keep_checkpoint:
        ckpt_path.unlink(missing_ok=True)
    return json.loads((out / MANIFEST).read_text())


def _lora_state(peft_model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def _load_lora_state(peft_model: Any, state: dict[str, torch.Tensor], where: Path) -> None:
    own = dict(peft_model.named_parameters())
    if set(state) != {n for n, p in own.items() if p.requires_grad}:
        raise CheckpointError(f"{where}: LoRA tensors do not match the model")
    with torch.no_grad():
        for n, t in state.items():
            own[n].copy_(t)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); delete it to start afresh") from None
    if not isinstance(state, dict) or not {"run", "epoch", "lora", "optimizer", "scheduler"} <= set(state):
        raise CheckpointError(f"{path}: not an llmrec encoder checkpoint")
    return state


def validation_metrics(enc: TextEncoder, dataset: Dataset, split: Split, cfg: LoraTuneConfig) -> dict[str, Any]:
    """HR/NDCG@10 on the validation targets with the zero-shot user encoder over `enc`'s item embeddings."""
    from llmrec.encoders.text_user import EmbeddingScorer
    from llmrec.evaluation.validate import validate

    was_training = enc.st.training
    enc.st.eval()
    item_emb = enc.encode_catalog(dataset.items, cache=False)
    enc.st.train(was_training)
    scorer = EmbeddingScorer(item_emb, decay=cfg.decay)
    out: dict[str, Any] = {}
    for protocol in cfg.eval_protocols:
        res = validate(scorer, dataset, split, "valid", protocol, cfg.seed)
        out[protocol] = {k: round(v, 4) for k, v in res.metrics.items() if k in ("HR@10", "NDCG@10", "MRR")}
        out[protocol]["n_users"] = len(res.per_user)
    return out
