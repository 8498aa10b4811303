"""`llmrec pretrain`: train a user model (SASRec, BERT4Rec, or LLM-IDs: the LLM over new item tokens) with one or
more objectives into a run folder.

Examples:
  llmrec pretrain --dataset beauty --model sasrec --objective next_item --out runs/sasrec-beauty
  llmrec pretrain --dataset ml-100k --model sasrec --objective cl4srec --epochs 20 --out runs/cl4srec-ml
  llmrec pretrain --dataset ml-100k --model bert4rec --objective ptum --epochs 20 --out runs/ptum-ml
  llmrec pretrain --config eval/configs/sasrec_beauty.yaml --out runs/sasrec-beauty --set model_options.dropout=0.3
  llmrec pretrain --config eval/configs/llm_ids_ml-100k.yaml --out runs/llm-ids-ml-100k   # SmolLM2 + LoRA
  torchrun --nproc_per_node 2 -m llmrec pretrain --dataset ml-100k --objective next_item --out runs/ddp

Objectives: next_item, masked_item, ptum, cl4srec, coserec, duorec, ccl, adaptssr (NAME:WEIGHT to weight a
sum, e.g. `--objective next_item,cl4srec:0.1`). A stage with a next-item objective early-stops on validation
NDCG@10 (full ranking). The run folder gets config.yaml, model.safetensors + model.json, metrics.jsonl and
result.json; rerunning an interrupted command resumes it.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg
    from llmrec.models import MODELS

    p = sub.add_parser(
        "pretrain", help="train / pre-train an ID user model with objectives", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", help="registered name or path")
    p.add_argument("--model", choices=MODELS.names(), help="encoder (default sasrec)")
    p.add_argument("--objective", help="NAME[,NAME…] (NAME:WEIGHT to weight); default: the model's next-item objective")
    p.add_argument("--epochs", type=int_at_least(1), help="epochs of the stage (an upper bound when it early-stops)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--seed", type=seed_arg, help="seed of weights, batches, augmentations and dropout")
    p.add_argument("--out", required=True, help="run folder (resumed if it holds an interrupted run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print result.json")
    add_data_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    from llmrec.config import apply_overrides, from_dict, read_yaml, to_dict
    from llmrec.errors import ConfigError
    from llmrec.training.loop import TrainConfig, stages_from_objectives, supervised_objective

    data: dict[str, Any] = {}
    for key in ("dataset", "model", "seed"):
        if getattr(args, key, None) is not None:
            data[key] = getattr(args, key)
    where = "command line"
    if args.config:
        data = {**data, **read_yaml(args.config)}
        where = str(args.config)
    if args.objective or "stages" not in data:
        names = args.objective or supervised_objective(data.get("model") or "sasrec")
        data["stages"] = [to_dict(s) for s in stages_from_objectives(names, args.epochs, args.lr)]
    elif args.epochs is not None or args.lr is not None:
        for st in data["stages"]:
            if args.epochs is not None:
                st["epochs"] = args.epochs
            if args.lr is not None:
                st["lr"] = args.lr
    data = apply_overrides(data, args.overrides)
    if not data.get("dataset"):
        raise ConfigError("no data set given: use --dataset NAME|PATH (or `dataset:` in --config)")
    return from_dict(TrainConfig, data, where)


def run(args: argparse.Namespace) -> int:
    from llmrec.commands._common import print_result
    from llmrec.training.loop import train

    cfg = build_config(args)
    result = train(cfg, args.out, data_dir=args.data_dir, progress=False if args.no_progress else None)
    print_result(result.to_dict(), args.json)
    return 0
