"""`llmrec tune-llm`: LoRA-tune the LLM on a data set's training interactions (P5-style multitask prompts, a
LlamaRec-style verbalizer ranker, TALLRec yes/no), for serving by vLLM as an adapter.

Task families (`--tasks`): direct (choose among C candidates, answered with the candidate's letter; the
candidates come from a retriever fitted on the training part, `--retriever`), sequential (the next title),
rating (the star rating, where the data has ratings), yesno (will the user like this item). One template of each
family is held out of training (`--set holdout.direct=...`) for the unseen-prompt test. Targets come from the
training part of every sequence only; each user's validation item picks the best epoch; no test item is ever
rendered into a prompt. The run folder (`--work`, default runs/tune-llm/NAME) holds checkpoints: rerun the same
command to resume. The adapter folder holds peft's files and a manifest checked on load.

Use the adapter:
  llmrec evaluate --dataset ml-100k --scorer llm:verbalizer --llm hf:smollm2-135m+adapters/NAME --protocol sampled:19
  llmrec serve-llm --lora adapters/NAME          then   --llm openai:URL#NAME

Examples:
  llmrec tune-llm --dataset ml-100k --out adapters/ml-100k-smollm2-lora
  llmrec tune-llm --dataset ml-100k --tasks direct,sequential --out runs/x --max-examples 2000 --set lr=1e-3
  llmrec tune-llm --dataset ml-100k --retriever run:runs/sasrec-ml-100k --out adapters/x
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg

    p = sub.add_parser(
        "tune-llm", help="LoRA-tune the LLM on a data set's prompts (resumable)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="registered name or path")
    p.add_argument("--out", required=True, help="adapter folder to write, e.g. adapters/NAME")
    p.add_argument("--tasks", help="comma-separated task families: direct, sequential, rating, yesno (default all)")
    p.add_argument("--llm", help="base model: smollm2-135m (default), a local transformers folder or a hub id; "
                                 "an hf: prefix is accepted")
    p.add_argument("--retriever", help="scorer whose top items are the direct / yes-no negatives, fitted on the "
                                       "training part: itemknn (default), pop, run:RUN_DIR (a trained SASRec), ...")
    p.add_argument("--epochs", type=int_at_least(1), help="passes over the examples (default 1)")
    p.add_argument("--max-examples", type=int_at_least(0), help="a seeded sample of this many examples (0 = all)")
    p.add_argument("--seed", type=seed_arg, help="seed of the examples, the LoRA init and dropout (default 0)")
    p.add_argument("--work", help="run folder for checkpoints and the log (default runs/tune-llm/<out name>)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_data_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.config import load_config
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.tune_llm import LLMTuneConfig, tune_llm

    base: dict[str, Any] = {}
    if args.tasks:
        base["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.llm:
        base["llm"] = args.llm.removeprefix("hf:")
    for key in ("retriever", "epochs", "max_examples", "seed"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    cfg = load_config(LLMTuneConfig, args.config, args.overrides, base=base)
    dataset = load_dataset(args.dataset, args.data_dir)
    split = leave_one_out(dataset)
    m = tune_llm(dataset, split, cfg, args.out, args.work)
    if args.json:
        print(json.dumps(m, indent=2))
    else:
        t = m["training"]
        print(f"adapter written to {args.out}: {m['peft']['trainable_params']:,} LoRA parameters, "
              f"{m['examples']['examples']} examples x {cfg.epochs} epoch(s) in {t['seconds']} s "
              f"({t['examples_per_s']} examples/s, {t['tokens_per_s']} tokens/s); best epoch {t['best_epoch']}")
        valid = (m.get("metrics") or {}).get("valid") or {}
        for fam, loss in (valid.get("loss") or {}).items():
            print(f"  validation answer loss  {fam:10s} {loss:.4f}")
        if "direct" in valid:
            d = valid["direct"]
            print(f"  validation direct       HR@1 {d['HR@1']:.4f}  NDCG@10 {d['NDCG@10']:.4f}  "
                  f"label bias {d['label_bias']}")
    print(f"llmrec: use it with --llm hf:{m['base_model']}+{args.out}, or `llmrec serve-llm --lora {args.out}`",
          file=sys.stderr)
    return 0
