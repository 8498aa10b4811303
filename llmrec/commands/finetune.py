"""`llmrec finetune`: transfer a trained encoder to next-item recommendation or a user-attribute task.

Examples:
  llmrec finetune --run runs/cl4srec-ml --task next-item --out runs/cl4srec-ml-ft
  llmrec finetune --run runs/cl4srec-ml --task gender --out runs/cl4srec-ml-gender
  llmrec evaluate --dataset ml-100k --scorer run:runs/cl4srec-ml-ft --protocol sampled:100

next-item fine-tunes the whole encoder with its next-item objective (next_item for SASRec, masked_item for
BERT4Rec), early-stopping on validation NDCG@10. gender / age / occupation (ml-100k) put a linear head on the
encoder's user vector and fine-tune both on a fixed, seeded 70/10/20 user split (gender: AUC; age groups and
occupation: accuracy).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg
    from llmrec.training.attributes import TASKS

    p = sub.add_parser(
        "finetune", help="fine-tune a trained encoder (next-item or user attributes)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, help="run folder of the pre-trained encoder")
    p.add_argument("--task", required=True, choices=["next-item", *TASKS])
    p.add_argument("--out", required=True, help="run folder of the fine-tuned model")
    p.add_argument("--dataset", help="data set to fine-tune on (default: the one the encoder was trained on)")
    p.add_argument("--epochs", type=int_at_least(1), help="maximum epochs (early stopping on the validation metric)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--seed", type=seed_arg, help="seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print result.json")
    add_data_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.models.checkpoint import read_model_info

    info = read_model_info(args.run)
    dataset = args.dataset or info.get("dataset_spec") or info.get("dataset")
    progress = False if args.no_progress else None
    if args.task == "next-item":
        result = _next_item(args, info, dataset, progress)
    else:
        result = _attribute(args, info, dataset, progress)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def _next_item(args: argparse.Namespace, info: dict[str, Any], dataset: str, progress) -> dict[str, Any]:
    from llmrec.commands._common import print_result
    from llmrec.config import apply_overrides, from_dict, read_yaml, to_dict
    from llmrec.training.loop import TrainConfig, stages_from_objectives, supervised_objective, train

    objective = supervised_objective(info["model"])
    data: dict[str, Any] = {"dataset": dataset, "model": info["model"], "init_from": str(args.run)}
    if args.seed is not None:
        data["seed"] = args.seed
    where = "command line"
    if args.config:
        data = {**data, **read_yaml(args.config)}
        where = str(args.config)
    if "stages" not in data:
        data["stages"] = [to_dict(s) for s in stages_from_objectives(objective, args.epochs, args.lr)]
    data = apply_overrides(data, args.overrides)
    cfg = from_dict(TrainConfig, data, where)
    result = train(cfg, args.out, data_dir=args.data_dir, progress=progress).to_dict()
    if not args.json:
        print_result(result, False)
    return result


def _attribute(args: argparse.Namespace, info: dict[str, Any], dataset: str, progress) -> dict[str, Any]:
    from llmrec.config import load_config
    from llmrec.models.checkpoint import check_compatible, load_model
    from llmrec.training.attributes import AttributeConfig, finetune_attribute
    from llmrec.training.loop import load_data

    base: dict[str, Any] = {"task": args.task}
    for key in ("epochs", "lr", "seed"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    cfg = load_config(AttributeConfig, args.config, args.overrides, base=base)
    ds, split = load_data(dataset, args.data_dir)
    model, minfo = load_model(args.run)
    check_compatible(minfo, split.n_items, ds.name, str(args.run))
    model.train()
    source = {"init_from": str(args.run), "dataset_spec": dataset}
    result = finetune_attribute(model, ds, split, cfg, args.out, progress, source)
    if not args.json:
        print(f"{args.task}: test {result['metric']} {result['test']:.4f} (valid {result['valid']:.4f}, "
              f"majority-class accuracy {result['majority_class_test_accuracy']:.4f})")
        print(f"llmrec: wrote {args.out}/result.json", file=sys.stderr)
    return result
