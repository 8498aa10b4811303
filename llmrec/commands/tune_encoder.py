"""`llmrec tune-encoder`: LoRA-tune a text item encoder on a data set's training interactions.

Writes a peft adapter + manifest.json (base model, data set, split hash, objectives, hyper-parameters,
training log, validation metrics) to --out; a checkpoint after every epoch makes an interrupted run resumable
(rerun the same command). Use the adapter with `llmrec evaluate --scorer text:minilm+OUT`.

Examples:
  llmrec tune-encoder --dataset ml-100k --out adapters/ml-100k-minilm-lora
  llmrec tune-encoder --dataset ml-100k --out runs/dp --objective next_item,dp --epochs 2 --set lr=5e-4
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg

    p = sub.add_parser(
        "tune-encoder", help="LoRA-tune a text item encoder on a data set (resumable)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="registered name or path")
    p.add_argument("--out", required=True, help="adapter folder to write, e.g. adapters/NAME")
    p.add_argument("--model", help="base encoder: minilm (default), a local folder or a hub id")
    p.add_argument("--objective", help="comma-separated objectives: next_item (default), cooc, dp")
    p.add_argument("--epochs", type=int_at_least(1), help="passes over the training users (default 3)")
    p.add_argument("--seed", type=seed_arg, help="seed of the example draws, dropout and LoRA init (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished adapter or a foreign checkpoint")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep checkpoint.pt beside the final adapter")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_data_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.config import load_config
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.encoders.lora import LoraTuneConfig, tune_encoder

    base: dict[str, Any] = {}
    if args.model:
        base["model"] = args.model
    if args.objective:
        base["objectives"] = [o.strip() for o in args.objective.split(",") if o.strip()]
    if args.epochs is not None:
        base["epochs"] = args.epochs
    if args.seed is not None:
        base["seed"] = args.seed
    cfg = load_config(LoraTuneConfig, args.config, args.overrides, base=base)
    dataset = load_dataset(args.dataset, args.data_dir)
    split = leave_one_out(dataset)
    manifest = tune_encoder(dataset, split, cfg, args.out, overwrite=args.overwrite,
                            keep_checkpoint=args.keep_checkpoint)
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        t = manifest["training"]
        print(f"adapter written to {args.out} ({manifest['peft']['trainable_params']:,} LoRA parameters, "
              f"{t['steps']} steps in {t['seconds']} s, {t['steps_per_s']} steps/s)")
        for phase, by_model in manifest.get("metrics", {}).items():
            for model, by_protocol in by_model.items():
                for protocol, m in by_protocol.items():
                    print(f"  {phase} {model:5s} {protocol:12s} HR@10 {m['HR@10']:.4f}  NDCG@10 {m['NDCG@10']:.4f}")
    print(f"llmrec: use it with --scorer text:{manifest['base_model']}+{args.out}", file=sys.stderr)
    return 0
