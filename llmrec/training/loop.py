"""The training loop: one encoder trained through a list of stages, each a weighted set of objectives.

    cfg = TrainConfig(dataset="ml-100k", model="sasrec", stages=[
        StageConfig(objectives=[ObjectiveSpec("cl4srec")], epochs=20),             # pre-training
        StageConfig(objectives=[ObjectiveSpec("next_item")], epochs=200),          # fine-tuning, early stopping
    ])
    result = train(cfg, "runs/x")

Per stage: Adam (lr, weight decay) over the encoder and the objectives' own parameters; each epoch runs the
windows of every user's training sequence (`windows.py`) in seeded batches. A stage that early-stops (by
default: one holding its encoder's `supervised` next-item objective) validates every `eval_every` epochs with
full-ranking NDCG@10 on the validation targets (`llmrec.evaluation.validate` with the model as a
`llmrec.models.scoring.ModelScorer`: the same code that reports test numbers), keeps the best weights and stops
after `patience` validations without improvement. After every epoch the run folder gets the resume state (the
`Position` and every tensor, `checkpoint.py`); rerunning the same command continues where it stopped with
results identical to an uninterrupted run (same thread count). The final encoder is evaluated on the test
targets (full ranking) into result.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmrec.config import save_config, to_dict
from llmrec.data.canonical import DataConfig
from llmrec.errors import ConfigError, LLMRecError
from llmrec.io import atomic_write_json
from llmrec.models.checkpoint import check_compatible, load_model, load_weights, read_json, save_model
from llmrec.training import checkpoint as ckpt
from llmrec.training import distributed as ddp
from llmrec.training.windows import Windows, epoch_batches, make_windows
from llmrec.types import Dataset, Phase, Split


@dataclass
class ObjectiveSpec:
    """One objective of a stage: its registered name, its weight in the stage's sum, its options."""

    name: str
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageConfig:
    """A stage: objectives trained together for up to `epochs` epochs at learning rate `lr`."""

    objectives: list[ObjectiveSpec]
    name: str = ""
    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    early_stop: bool | None = None  # validate + keep the best + stop; None = when a next-item objective is in it
    patience: int = 10  # validations without improvement before stopping
    eval_every: int = 1  # epochs between validations
    grad_clip: float = 0.0  # max gradient norm; 0 = off

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ValueError("a stage needs at least one objective")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.eval_every < 1:
            raise ValueError("epochs, batch_size, patience and eval_every must be ≥ 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as config.yaml in the run folder (resume checks it is unchanged)."""

    dataset: str
    stages: list[StageConfig]
    model: str = "sasrec"
    model_options: dict[str, Any] = field(default_factory=dict)  # SASRecConfig / BERT4RecConfig fields
    seed: int = 0
    init_from: str | None = None  # a run folder whose encoder weights (and model config) start this run
    window_stride: int | None = None  # see training/windows.py; None = max_len // 2, 0 = last window only
    bucket: int = 32  # batches per length-sorted group (1 = plain random batches)
    threads: int = 2  # torch intra-op threads (results are bit-identical only at equal thread counts)
    eval_batch_size: int = 1024
    test: bool = True  # evaluate the final encoder on the test targets (full ranking)
    data: DataConfig = field(default_factory=DataConfig)  # filters applied when loading the data set

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a run needs at least one stage")
        if self.threads < 1 or self.bucket < 1:
            raise ValueError("threads and bucket must be ≥ 1")


@dataclass
class RunResult:
    """What train() returns and writes to result.json."""

    run_dir: str
    best_valid_ndcg10: float | None
    test: dict[str, float]
    stages: list[dict[str, Any]]
    seconds: float
    peak_rss_mb: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "best_valid_NDCG@10": self.best_valid_ndcg10,
            "test": self.test,
            "stages": self.stages,
            "seconds": round(self.seconds, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


@dataclass
class Position:
    """Where a run stands: saved after every epoch (state.json, "pos") and read back to resume."""

    stage: int = 0  # the stage running (index into cfg.stages)
    epoch: int = 0  # epochs of that stage done
    best: float = -1.0  # the stage's best validation NDCG@10 so far (-1: none yet)
    best_epoch: int = -1  # 0-based epoch of `best`
    bad: int = 0  # validations since `best` last improved (early stopping compares it with `patience`)
    step: int = 0  # optimizer steps over the whole run
    seconds: float = 0.0  # training + validation seconds over the whole run
    stages: list[dict[str, Any]] = field(default_factory=list)  # one record per stage started (result.json)

    def next_stage(self) -> None:
        self.stage += 1
        self.epoch, self.best, self.best_epoch, self.bad = 0, -1.0, -1, 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Position:
        return cls(**data)


@dataclass
class _Run:
    """What every stage of one `train` call shares."""

    cfg: TrainConfig
    model: nn.Module
    windows: Windows
    dataset: Dataset
    split: Split
    run_dir: Path
    dist: ddp.DistInfo
    model_info: dict[str, Any]  # saved beside every checkpoint of the encoder
    show: bool  # progress bars
    stop_after_epochs: int | None  # return after this many epochs in this call, as an interruption would
    epochs_this_call: int = 0


class TrainStep(nn.Module):
    """The model and a stage's objectives as one module, so DDP sees every parameter and every forward."""

    def __init__(self, model: nn.Module, objectives: list[nn.Module], weights: list[float]) -> None:
        super().__init__()
        self.model = model
        self.objectives = nn.ModuleList(objectives)
        self.weights = weights

    def forward(self, batch):  # -> list[ObjectiveOutput]
        return [obj(batch) for obj in self.objectives]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _seed_of(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (stage, epoch, step...)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def load_data(name: str, data_dir: str | None = None, data_cfg: DataConfig | None = None) -> tuple[Dataset, Split]:
    from llmrec.data import leave_one_out, load_dataset

    dataset = load_dataset(name, data_dir, data_cfg)
    return dataset, leave_one_out(dataset)


def build_encoder(cfg: TrainConfig, n_items: int, dataset_name: str) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh model (seeded), or the encoder of `cfg.init_from` (its model config, these options on top)."""
    from llmrec.models import build_model, model_config

    torch.manual_seed(cfg.seed)
    if not cfg.init_from:
        return build_model(cfg.model, n_items, cfg.model_options), {}
    model, info = load_model(cfg.init_from)
    check_compatible(info, n_items, dataset_name, str(cfg.init_from))
    if info["model"] != cfg.model:
        raise ConfigError(f"init_from {cfg.init_from} holds a {info['model']} model, but this run asks for {cfg.model}")
    options = {**info["options"], **cfg.model_options}
    if options != info["options"]:
        changed = model_config(cfg.model, n_items, options)
        if changed.hidden != model.hidden or getattr(changed, "n_layers", 0) != getattr(model.config, "n_layers", 0):
            raise ConfigError("init_from: hidden size and layer count must match the pre-trained encoder")
        fresh = build_model(cfg.model, n_items, options)
        fresh.load_state_dict(model.state_dict())
        model = fresh
    model.train()
    return model, {"init_from": str(cfg.init_from), "init_dataset": info.get("dataset")}


def validate(model: nn.Module, dataset: Dataset, split: Split, phase: Phase = "valid", ks=(10,),
             batch_size: int = 1024) -> dict[str, float]:
    """Full-ranking metrics of `model` on the validation (or test) targets (`llmrec.evaluation.validate`)."""
    from llmrec.evaluation.validate import validate as evaluate_on
    from llmrec.models.scoring import ModelScorer

    return dict(evaluate_on(ModelScorer(model), dataset, split, phase, ks=ks, batch_size=batch_size).metrics)


def _check_resume(run_dir: Path, cfg: TrainConfig) -> None:
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    from llmrec.config import read_yaml

    old = read_yaml(saved)
    if old != to_dict(cfg):
        keys = sorted(k for k in set(old) | set(to_dict(cfg)) if old.get(k) != to_dict(cfg).get(k))
        raise ConfigError(
            f"{run_dir} holds a run with another config (differs in {', '.join(keys)}); "
            f"use another --out folder or delete it to start over"
        )


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    dataset=None,
    split=None,
    data_dir: str | None = None,
    progress: bool | None = None,
    stop_after_epochs: int | None = None,
) -> RunResult:
    """Run (or resume) the stages of `cfg` into `run_dir`; see the module doc.

    stop_after_epochs: return after this many epochs in this call (state saved), as an interruption would.
    """
    run_dir = Path(run_dir)
    info = ddp.init_distributed()
    torch.set_num_threads(cfg.threads)
    if dataset is None or split is None:
        dataset, split = load_data(cfg.dataset, data_dir, cfg.data)
    show = (sys.stderr.isatty() if progress is None else progress) and info.main
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _check_resume(run_dir, cfg)
        save_config(cfg, run_dir / "config.yaml")
    ddp.barrier(info)

    model, origin = build_encoder(cfg, split.n_items, dataset.name)
    if not cfg.init_from and hasattr(model, "init_from_catalog"):  # an LLM's item tokens start from their titles
        model.init_from_catalog(dataset.items.titles(range(1, split.n_items + 1)))
    T = model.max_len
    windows = make_windows(split, T, cfg.window_stride)
    model_info = {"dataset": dataset.name, "dataset_spec": cfg.dataset, "split_hash": split.hash, "task": "next-item",
                  **origin}

    state = ckpt.load_state(run_dir)
    pos = Position()
    tensors: dict[str, torch.Tensor] = {}
    if state is not None:
        tensors, sinfo = state
        pos = Position.from_dict(sinfo["pos"])
        load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                     str(run_dir / ckpt.STATE_FILE))
        torch.set_rng_state(tensors["rng.torch"])
        if info.main:  # one line on any stderr, a terminal or a log file
            print(f"llmrec: resuming {run_dir} at stage {pos.stage} epoch {pos.epoch}", file=sys.stderr)

    run = _Run(cfg, model, windows, dataset, split, run_dir, info, model_info, show, stop_after_epochs)
    interrupted = False
    for si in range(pos.stage, len(cfg.stages)):
        interrupted = _run_stage(run, si, pos, tensors)
        tensors = {}
        if interrupted:
            break
        pos.next_stage()
        if info.main:
            _save_resume(run_dir, model, None, None, pos)

    if interrupted:
        ddp.barrier(info)
        return RunResult(str(run_dir), None, {}, pos.stages, pos.seconds, peak_rss_mb())

    test: dict[str, float] = {}
    if cfg.test:
        test = validate(model, dataset, split, "test", ks=(5, 10, 20), batch_size=cfg.eval_batch_size)
    best = [s["best_valid_NDCG@10"] for s in pos.stages if s.get("best_valid_NDCG@10") is not None]
    res = RunResult(str(run_dir), best[-1] if best else None, test, pos.stages, pos.seconds, peak_rss_mb())
    if info.main:
        save_model(run_dir, model, model_info)
        atomic_write_json(run_dir / "result.json", {**res.to_dict(), "dataset": dataset.name,
                                                    "model": model.name, "seed": cfg.seed,
                                                    "world_size": info.world, "threads": cfg.threads,
                                                    "protocol": "full ranking, leave-one-out, history masked"})
    ddp.barrier(info)
    return res


def _save_resume(run_dir: Path, model: nn.Module, step_module: TrainStep | None,
                 opt: torch.optim.Optimizer | None, pos: Position) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    plain: dict[str, Any] = {}
    if step_module is not None:
        for i, obj in enumerate(step_module.objectives):
            for k, v in obj.encoder_state_dict().items():
                tensors[f"objective.{i}.{k}"] = v
    if opt is not None:
        ot, plain = ckpt.optimizer_tensors(opt)
        tensors.update(ot)
    tensors["rng.torch"] = torch.get_rng_state()
    ckpt.save_state(run_dir, tensors, {"pos": pos.to_dict(), "optimizer": plain})


def _run_stage(run: _Run, si: int, pos: Position, tensors: dict[str, torch.Tensor]) -> bool:
    """Run (or resume at `pos`) stage `si`; True when it stopped for `stop_after_epochs` (state saved)."""
    from llmrec.objectives import ObjectiveContext, SeqBatch, build_objective

    cfg, model, windows, dataset, split, run_dir, info = (
        run.cfg, run.model, run.windows, run.dataset, run.split, run.run_dir, run.dist)
    stage = cfg.stages[si]
    context = ObjectiveContext(split=split, epochs=stage.epochs, users=dataset.users)
    with torch.random.fork_rng():  # objective parameters get their own seed: resuming replays the same dropout
        torch.manual_seed(_seed_of(cfg.seed, si, 1))
        objectives = [build_objective(o.name, model, o.options, context) for o in stage.objectives]
    weights = [o.weight for o in stage.objectives]
    step_module = TrainStep(model, objectives, weights)
    early = stage.early_stop if stage.early_stop is not None else any(obj.supervised for obj in objectives)
    opt = torch.optim.Adam(step_module.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    if tensors and pos.epoch > 0:
        for i, obj in enumerate(objectives):
            own = {k[len(f"objective.{i}.") :]: v for k, v in tensors.items() if k.startswith(f"objective.{i}.")}
            if own:
                obj.load_state_dict({**obj.state_dict(), **own})
        state_info = read_json(run_dir / ckpt.STATE_INFO)
        ckpt.restore_optimizer(opt, tensors, state_info["optimizer"])
    trainer = ddp.wrap(step_module, info)
    name = stage.name or "+".join(o.name for o in stage.objectives)
    bar = None
    if run.show:
        from tqdm.auto import tqdm

        bar = tqdm(total=stage.epochs, initial=pos.epoch, desc=f"stage {si + 1}/{len(cfg.stages)} {name}",
                   unit="epoch", file=sys.stderr, dynamic_ncols=True)
    record = pos.stages[si] if len(pos.stages) > si else {
        "stage": name, "objectives": [o.name for o in stage.objectives], "epochs_run": 0, "train_seconds": 0.0,
        "eval_seconds": 0.0, "sequences": 0, "best_valid_NDCG@10": None, "best_epoch": None,
        "seconds_to_best": None, "stopped_early": False}
    if len(pos.stages) <= si:
        pos.stages.append(record)
    interrupted = False
    model.train()
    for epoch in range(pos.epoch, stage.epochs):
        if run.stop_after_epochs is not None and run.epochs_this_call >= run.stop_after_epochs:
            interrupted = True
            break
        t0 = time.perf_counter()
        for obj in objectives:
            obj.on_epoch_start(epoch)
        gen = torch.Generator().manual_seed(_seed_of(cfg.seed, si, epoch))
        batches = epoch_batches(windows, stage.batch_size, gen, cfg.bucket)
        totals: dict[str, float] = {}
        n_seq = 0
        steps: Any = batches
        if bar is not None:  # an inner bar: an epoch of an LLM body takes minutes
            from tqdm.auto import tqdm

            steps = tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False, file=sys.stderr,
                         dynamic_ncols=True)
        for bi, idx in enumerate(steps):
            idx = ddp.shard(idx, info)
            w = windows.select(idx)
            rng = torch.Generator().manual_seed(_seed_of(cfg.seed, si, epoch, bi, info.rank))
            batch = SeqBatch(w.seq, w.fresh, w.users, rng, epoch)
            outs = trainer(batch)
            loss = sum(wt * ddp.loss_weight(o.n, info) * o.loss for wt, o in zip(weights, outs))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if stage.grad_clip > 0:
                nn.utils.clip_grad_norm_(step_module.parameters(), stage.grad_clip)
            opt.step()
            pos.step += 1
            n_seq += len(idx)
            for o in outs:
                for k, v in o.logs.items():
                    totals[k] = totals.get(k, 0.0) + v
        train_s = time.perf_counter() - t0
        logs = {k: v / max(1, len(batches)) for k, v in totals.items()}
        if not all(math.isfinite(v) for v in logs.values()):
            raise LLMRecError(f"training diverged in stage {si + 1} epoch {epoch + 1} ({logs}); lower the lr")
        record["epochs_run"] = epoch + 1
        record["train_seconds"] += train_s
        record["sequences"] += n_seq
        pos.seconds += train_s
        stop = False
        metrics: dict[str, float] = {}
        if early and ((epoch + 1) % stage.eval_every == 0 or epoch + 1 == stage.epochs):
            t1 = time.perf_counter()
            metrics = validate(model, dataset, split, "valid", ks=(10,), batch_size=cfg.eval_batch_size)
            model.train()
            eval_s = time.perf_counter() - t1
            record["eval_seconds"] += eval_s
            pos.seconds += eval_s
            ndcg = metrics["NDCG@10"]
            if ndcg > pos.best:
                pos.best, pos.best_epoch, pos.bad = ndcg, epoch, 0
                record.update({"best_valid_NDCG@10": ndcg, "best_epoch": epoch + 1,
                               "best_valid_HR@10": metrics.get("HR@10"), "seconds_to_best": round(pos.seconds, 2)})
                if info.main:
                    save_model(run_dir, model, run.model_info)
            else:
                pos.bad += 1
                stop = pos.bad >= stage.patience
        pos.epoch = epoch + 1
        run.epochs_this_call += 1
        if info.main:
            line = {"stage": si + 1, "epoch": epoch + 1, "train_s": round(train_s, 3), **logs, **metrics}
            with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        if bar is not None:
            post = {k: f"{v:.4f}" for k, v in list(logs.items())[:2]}
            if metrics:
                post["val_ndcg10"] = f"{metrics['NDCG@10']:.4f}"
                post["best"] = f"{pos.best:.4f}"
            bar.set_postfix(post)
            bar.update(1)
        stop = ddp.broadcast_flag(stop, info)
        if stop:
            record["stopped_early"] = True
            pos.epoch = stage.epochs
        if info.main:
            _save_resume(run_dir, model, step_module, opt, pos)
        ddp.barrier(info)
        if stop:
            break
    if bar is not None:
        bar.close()
    if not interrupted and early and pos.best >= 0:
        best_model, _ = load_model(run_dir)  # the best weights of this stage
        model.load_state_dict(best_model.state_dict())
        model.train()
    return interrupted


def supervised_objective(model: str) -> str:
    """The registered next-item objective (`Objective.supervised`) that fits model `model`'s encoder: next_item
    for a causal one (SASRec), masked_item for a bidirectional one (BERT4Rec)."""
    from llmrec.models import MODELS
    from llmrec.objectives import OBJECTIVES

    needs = "bidirectional" if MODELS.get(model).cls.bidirectional else "causal"
    return next(n for n in OBJECTIVES.names() if OBJECTIVES.get(n).supervised and OBJECTIVES.get(n).requires == needs)


def stages_from_objectives(names: str, epochs: int | None, lr: float | None = None) -> list[StageConfig]:
    """`"cl4srec,next_item:0.1"` → one stage with those objectives (weights after ':')."""
    specs = []
    for part in [p for p in names.split(",") if p.strip()]:
        name, _, weight = part.strip().partition(":")
        try:
            specs.append(ObjectiveSpec(name, float(weight) if weight else 1.0))
        except ValueError:
            raise ConfigError(f"--objective {part!r}: expected NAME or NAME:WEIGHT") from None
    if not specs:
        raise ConfigError("--objective: give at least one objective name")
    kw: dict[str, Any] = {"objectives": specs}
    if epochs is not None:
        kw["epochs"] = epochs
    if lr is not None:
        kw["lr"] = lr
    return [StageConfig(**kw)]
