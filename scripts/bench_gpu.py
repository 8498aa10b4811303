"""Training and ranking speed on a GPU, on the real data sets' shapes (issue 3 speed, issue 5 ranker workloads).

The GPU machine has no copy of the data (its terms forbid moving the files around), so this runs in two steps:

    .venv/bin/python scripts/bench_gpu.py --export-shapes .gpu/shapes.json   # here: shapes only, no item ids
    python3 scripts/bench_gpu.py --shapes .gpu/shapes.json --device cuda       # there: writes $OUT or --out

The shapes file holds, per data set, the catalogue size, the number of users and the length of every training
window (leave-one-out split, max_len 50, the windows `llmrec pretrain` trains on), plus the embedded LLM's
architecture (SmolLM2-135M's config.json). On the device, windows of those lengths are filled with uniformly
drawn item ids — timing depends on the shapes, not on which ids they hold — and:

1. SASRec (hidden 64, 2 layers, 1 head, FFN 256, max_len 50; the `eval/configs/sasrec_*.yaml` model) trains
   one warm-up epoch and then timed epochs with llmrec's own `next_item` objective (full-softmax CE over all
   items at every position), Adam, batches of 256 windows bucketed by length as in `llmrec.training.windows`;
   fp32 (TF32 matmuls) and bf16 autocast. Reported: s/epoch, windows/s, targets/s, peak GPU memory.
2. Full ranking: every user's last window encoded, scored against all items, top 10 taken: users/s.
3. LLM ranker workloads on a randomly initialised model of SmolLM2-135M's architecture (same FLOPs as the
   real weights; bf16): the verbalizer (one forward pass over a ~250-token prompt, read one position) and
   generative listwise ranking (~300-token prompt + 183 generated tokens, the averages measured on ml-100k in
   eval/results/llm_rankers.md), batch 16: prompts/s and the speed ratio.

Writes eval/results/bench_gpu.{json,md} (or --out DIR) with the device name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_LEN = 50
MODEL = {"max_len": MAX_LEN, "hidden": 64, "n_layers": 2, "n_heads": 1, "ffn_mult": 4, "dropout": 0.5}
DATASETS = ("ml-100k", "beauty", "sports", "toys")
SMOLLM2 = {  # SmolLM2-135M-Instruct's architecture, used when the converted model is not in the cache
    "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True, "model_type": "llama",
}


def export_shapes(path: Path) -> None:
    from llmrec.training.loop import load_data
    from llmrec.training.windows import make_windows

    out: dict = {"datasets": {}, "llm": SMOLLM2}
    for name in DATASETS:
        try:
            _, split = load_data(name)
        except Exception as exc:  # a data set missing here is skipped, not fatal
            print(f"skip {name}: {exc}", file=sys.stderr)
            continue
        w = make_windows(split, MAX_LEN)
        out["datasets"][name] = {"n_items": split.n_items, "n_users": split.n_users,
                                 "window_lengths": (w.seq != 0).sum(dim=1).tolist()}
    from llmrec.llm.models import DEFAULT_MODEL, converted_path

    cfg = converted_path(DEFAULT_MODEL) / "config.json"  # present once the embedded model was converted
    if cfg.is_file():
        out["llm"] = json.loads(cfg.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)", file=sys.stderr)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def synth_windows(lengths: list[int], n_items: int, gen: torch.Generator):
    from llmrec.training.windows import Windows

    n = torch.tensor(lengths)
    L = MAX_LEN + 1
    seq = torch.randint(1, n_items + 1, (len(lengths), L), generator=gen)
    valid = torch.arange(L)[None, :] >= (L - n)[:, None]
    seq = seq * valid
    return Windows(seq, valid.clone(), torch.arange(1, len(lengths) + 1))


def bench_training(name: str, shape: dict, device: torch.device, amp: bool, epochs: int) -> dict:
    from llmrec.models import build_model
    from llmrec.objectives.base import SeqBatch
    from llmrec.objectives.next_item import NextItem
    from llmrec.training.windows import epoch_batches

    gen = torch.Generator().manual_seed(0)
    win = synth_windows(shape["window_lengths"], shape["n_items"], gen)
    torch.manual_seed(0)
    model = build_model("sasrec", shape["n_items"], MODEL).to(device)
    obj = NextItem(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seq_d, fresh_d = win.seq.to(device), win.fresh.to(device)
    targets = 0
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for ep in range(epochs + 1):  # epoch 0 warms up (kernels, allocator)
        batches = epoch_batches(win, 256, gen)
        sync(device)
        t0 = time.perf_counter()
        n_t = 0
        for idx in batches:
            idx_d = idx.to(device, non_blocking=True)
            batch = SeqBatch(seq_d[idx_d], fresh_d[idx_d], idx_d, gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = obj(batch)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            n_t += out.n
        sync(device)
        if ep > 0:
            times.append(time.perf_counter() - t0)
            targets = n_t
    s = min(times)
    row = {"dataset": name, "precision": "bf16 autocast" if amp else "fp32 (TF32)", "windows": len(win),
           "items": shape["n_items"], "s_per_epoch": round(s, 3), "windows_per_s": round(len(win) / s),
           "targets_per_s": round(targets / s), "epochs_timed": len(times)}
    if device.type == "cuda":
        row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    # full ranking: every user's most recent window → all items → top 10
    model.eval()
    last = torch.randint(1, shape["n_items"] + 1, (shape["n_users"], MAX_LEN), generator=gen).to(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for _rep in range(2):  # the second pass is timed
            sync(device)
            t0 = time.perf_counter()
            for s0 in range(0, shape["n_users"], 4096):
                u = model.encode(last[s0 : s0 + 4096])
                scores = model.item_logits(u)
                scores.topk(10, dim=1)
            sync(device)
            rank_s = time.perf_counter() - t0
    row.update({"users": shape["n_users"], "rank_all_users_s": round(rank_s, 4),
                "users_per_s": round(shape["n_users"] / rank_s)})
    return row


def bench_llm(cfg: dict, device: torch.device, batch: int, reps: int) -> list[dict]:
    from transformers import AutoConfig, AutoModelForCausalLM

    conf = AutoConfig.for_model(**{k: v for k, v in cfg.items() if k not in ("architectures", "torch_dtype",
                                                                               "transformers_version")})
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_config(conf, dtype=dtype).to(device).eval()
    V = conf.vocab_size
    gen = torch.Generator().manual_seed(0)
    rows = []

    def timed(fn) -> float:
        fn()  # warm-up
        best = float("inf")
        for _ in range(reps):
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            best = min(best, time.perf_counter() - t0)
        return best

    verb = torch.randint(0, V, (batch, 250), generator=gen).to(device)

    def verbalizer() -> None:
        with torch.no_grad():
            model(input_ids=verb, logits_to_keep=1)

    lw = torch.randint(0, V, (batch, 300), generator=gen).to(device)

    def listwise() -> None:
        with torch.no_grad():
            model.generate(input_ids=lw, attention_mask=torch.ones_like(lw), max_new_tokens=183, min_new_tokens=183,
                           do_sample=False, pad_token_id=0)

    tv, tl = timed(verbalizer), timed(listwise)
    rows.append({"workload": "verbalizer: 250-token prompt, one forward, 20 labels read", "batch": batch,
                 "s": round(tv, 4), "prompts_per_s": round(batch / tv, 1)})
    rows.append({"workload": "listwise: 300-token prompt + 183 generated tokens (greedy)", "batch": batch,
                 "s": round(tl, 4), "prompts_per_s": round(batch / tl, 2)})
    rows.append({"workload": "speed ratio verbalizer / listwise", "batch": batch, "s": None,
                 "prompts_per_s": round(tl / tv, 1)})
    return rows


def markdown(res: dict) -> str:
    lines = ["# GPU speed: SASRec training, full ranking, LLM ranker workloads", "",
             f"Device: **{res['device']}**; torch {res['torch']}; {res['date']}. Command: `{res['command']}`.",
             "Shapes: the real training windows of each data set (leave-one-out split, max_len 50), item ids drawn "
             "uniformly; SASRec hidden 64, 2 layers, 1 head, batch 256, Adam, full-softmax CE (llmrec's "
             "`next_item`); best of the timed epochs after one warm-up epoch.", "",
             "| data set | precision | windows | items | s / epoch | windows/s | targets/s | peak GPU MB | "
             "rank all users s | users/s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["training"]:
        lines.append(f"| {r['dataset']} | {r['precision']} | {r['windows']} | {r['items']} | {r['s_per_epoch']} | "
                     f"{r['windows_per_s']} | {r['targets_per_s']} | {r.get('peak_gpu_mb', '–')} | "
                     f"{r['rank_all_users_s']} | {r['users_per_s']} |")
    if res.get("llm"):
        lines += ["", "LLM ranker workloads on SmolLM2-135M's architecture (random weights: same FLOPs; "
                  "bf16, transformers eager), batch 16, best of repeats:", "",
                  "| workload | batch | s | prompts/s |", "|---|---:|---:|---:|"]
        for r in res["llm"]:
            lines.append(f"| {r['workload']} | {r['batch']} | {r['s'] if r['s'] is not None else '–'} | "
                         f"{r['prompts_per_s']}{'x' if r['s'] is None else ''} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export-shapes", metavar="JSON", help="write the shapes file here and stop")
    ap.add_argument("--shapes", metavar="JSON", help="shapes file from --export-shapes")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up one")
    ap.add_argument("--no-llm", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "eval" / "results"))
    args = ap.parse_args()
    if args.export_shapes:
        export_shapes(Path(args.export_shapes))
        return 0
    device = torch.device(args.device)
    if not args.shapes:
        if device.type == "cpu":  # `make bench` on a machine without a GPU: the CPU numbers are bench_sasrec's
            print("bench_gpu: no GPU on this machine and no --shapes given; nothing to do (see --help)", file=sys.stderr)
            return 0
        args.shapes = str(Path(os.environ.get("TMPDIR", "/tmp")) / "llmrec-gpu-shapes.json")
        export_shapes(Path(args.shapes))  # the data is on this machine: take the shapes from it directly
    shapes = json.loads(Path(args.shapes).read_text())
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    res = {"device": name, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
           "command": "python3 scripts/bench_gpu.py --shapes shapes.json --device " + args.device,
           "cpu_count": os.cpu_count(), "training": [], "llm": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        (out / "bench_gpu.json").write_text(json.dumps(res, indent=2) + "\n")
        (out / "bench_gpu.md").write_text(markdown(res))

    for ds in args.datasets:
        if ds not in shapes["datasets"]:
            continue
        for amp in (False, True) if device.type == "cuda" else (False,):
            row = bench_training(ds, shapes["datasets"][ds], device, amp, args.epochs)
            print(json.dumps(row), flush=True)
            res["training"].append(row)
            save()
    if not args.no_llm:
        try:
            res["llm"] = bench_llm(shapes["llm"], device, batch=16, reps=3)
        except Exception as exc:  # report, keep the training numbers
            res["llm_error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(res["llm"] or res.get("llm_error")), flush=True)
    save()
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
