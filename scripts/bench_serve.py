"""Benchmark: `llmrec serve` under load on 127.0.0.1 — latency, requests/s, and how much of the scorer's offline
batched throughput the HTTP service keeps.

    python scripts/bench_serve.py                       # SASRec and a hybrid on ml-100k, 10 s per level (minutes)
    python scripts/bench_serve.py --run runs/my-sasrec  # an existing SASRec run instead of training one
    python scripts/bench_serve.py --scorers pop itemknn --duration 2 --out /tmp/serve   # a smoke run (seconds)

For each scorer:
  1. offline: `Recommender.recommend_many` in this process on batches of --max-batch users (the service's own
     code path minus HTTP: one scorer call, history masking, top 10) over every user, --duration seconds;
     queries/s is the ceiling the service is measured against;
  2. served: `llmrec serve` in a subprocess on a free loopback port (--max-batch, --batch-window-ms as given);
     for each concurrency level (default 1, 8, 32) that many closed-loop clients (keep-alive connections written
     on asyncio streams: a light load generator) send GET /users/{u}/recommendations?k=10 for users drawn with a fixed seed,
     for --duration seconds after a short warm-up; p50 / p95 / p99 latency, requests/s, errors, and the mean
     scorer batch (from /health) are recorded. ratio = served requests/s ÷ offline queries/s (goal ≥ 0.5 at
     concurrency 32).
Server and offline scoring use the same torch thread count (--threads); the load generator runs in this process
beside the server, on the same cores, as it would on one machine.

Scorers: `sasrec` (the run at --run, else runs/bench-serve/sasrec-<dataset>, trained once with
llmrec.training from eval/configs/sasrec_<dataset>.yaml), `hybrid` (--hybrid YAML, else runs/bench-serve/
hybrid.yaml: SASRec + item-kNN + zero-shot MiniLM text similarity, weighted z-score fusion), or any scorer spec.
Writes <out>/serve.json and <out>/serve.md (default eval/results/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PY = sys.executable
K = 10


def sasrec_run(dataset: str, run: str | None) -> Path:
    """The SASRec run to serve: --run, or runs/bench-serve/sasrec-<dataset>, trained here once if absent."""
    if run:
        return Path(run)
    out = ROOT / "runs" / "bench-serve" / f"sasrec-{dataset}"
    if (out / "result.json").is_file():
        return out
    import torch

    from llmrec.config import load_config
    from llmrec.training import TrainConfig, train

    config = ROOT / "eval" / "configs" / f"sasrec_{dataset}.yaml"
    print(f"[bench-serve] training SASRec ({config.relative_to(ROOT)}) into {out} — once", file=sys.stderr, flush=True)
    threads = torch.get_num_threads()
    train(load_config(TrainConfig, config), out, progress=False)
    torch.set_num_threads(threads)  # train() sets the process-wide count
    return out


def hybrid_config(run_dir: Path, path: str | None) -> Path:
    if path:
        return Path(path)
    out = ROOT / "runs" / "bench-serve" / "hybrid.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# bench_serve.py's hybrid: SASRec + item-kNN + zero-shot MiniLM, weighted z-score fusion (equal weights)\n"
        "name: hybrid-serve\nfusion: weighted\ncomponents:\n"
        f"  - {{name: sasrec, scorer: 'run:{run_dir}'}}\n  - {{name: itemknn, scorer: itemknn}}\n"
        "  - {name: text, scorer: 'text:minilm'}\n"
    )
    return out


def resolve(names: list[str], args: argparse.Namespace) -> list[tuple[str, str]]:
    """(label, scorer spec) for each requested scorer."""
    out = []
    run = None
    for name in names:
        if name in ("sasrec", "hybrid"):
            run = run or sasrec_run(args.dataset, args.run)
            spec = f"run:{run}" if name == "sasrec" else f"hybrid:{hybrid_config(run, args.hybrid)}"
            out.append((name, spec))
        else:
            out.append((name, name))
    return out


# --- offline ----------------------------------------------------------------------------------------------------

def offline(spec: str, args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    """Queries/s of `Recommender.recommend_many` on batches of --max-batch users, in this process."""
    import torch

    from llmrec.pipelines import Recommender, RecommenderConfig

    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    rec = Recommender.load(RecommenderConfig(dataset=args.dataset, scorer=spec, max_k=100), args.data_dir)
    load_s = time.perf_counter() - t
    users = rec.user_ids[1:]
    queries = [rec.query_user(u, K) for u in users]
    rec.recommend_many(queries[: args.max_batch])  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.duration:
        for s in range(0, len(queries), args.max_batch):
            rec.recommend_many(queries[s : s + args.max_batch])
            n += len(queries[s : s + args.max_batch])
            if time.perf_counter() - t0 >= args.duration:
                break
    wall = time.perf_counter() - t0
    return {"queries_per_s": round(n / wall, 1), "batch": args.max_batch, "queries": n, "seconds": round(wall, 2),
            "load_seconds": round(load_s, 2), "users": len(users)}, users


# --- served -----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(spec: str, args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [PY, "-m", "llmrec", "serve", "--dataset", args.dataset, "--scorer", spec, "--port", str(port),
           "--max-batch", str(args.max_batch), "--batch-window-ms", str(args.window_ms),
           "--threads", str(args.threads)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.start_timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"bench_serve: `llmrec serve` exited ({proc.returncode}); log: {log}\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit(f"bench_serve: the server did not answer within {args.start_timeout} s; log: {log}")
        time.sleep(0.25)


async def load(url: str, users: list[Any], concurrency: int, duration: float, seed: int) -> dict[str, Any]:
    """`concurrency` closed-loop clients for `duration` seconds; latencies of the requests that succeeded.

    Each client is one keep-alive HTTP/1.1 connection written by hand on asyncio streams: a few microseconds of
    CPU a request, where an HTTP library's client costs about as much CPU as the server it measures (both share
    this machine's cores)."""
    host, port = url.removeprefix("http://").split(":")
    rng = random.Random(seed)
    paths = [f"/users/{rng.choice(users)}/recommendations?k={K}" for _ in range(20_000)]
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration

    async def client(mine: list[str]) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        i = 0
        while time.perf_counter() < stop:
            path = mine[i % len(mine)]
            i += 1
            t = time.perf_counter()
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, StopIteration):
                errors += 1  # a broken connection: count it and open another
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
                continue
            if status == 200 and body.count(b'"item_id"') == K:
                latencies.append(time.perf_counter() - t)
            else:
                errors += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(paths[j::concurrency]) for j in range(concurrency)))
    return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - t0}


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def served(label: str, spec: str, users: list[Any], args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    import httpx

    proc, url = start_server(spec, args, tmp / f"serve-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}.log")
    rows = []
    try:
        asyncio.run(load(url, users, max(args.concurrency), min(2.0, args.duration), seed=999))  # warm-up
        for c in args.concurrency:
            before = httpx.get(f"{url}/health").json()["batching"]
            res = asyncio.run(load(url, users, c, args.duration, seed=c))
            after = httpx.get(f"{url}/health").json()["batching"]
            lat = res["latencies"]
            batches = after["batches"] - before["batches"]
            rows.append({
                "concurrency": c, "requests": len(lat), "errors": res["errors"],
                "requests_per_s": round(len(lat) / res["seconds"], 1),
                "p50_ms": round(pct(lat, 50) * 1000, 2), "p95_ms": round(pct(lat, 95) * 1000, 2),
                "p99_ms": round(pct(lat, 99) * 1000, 2),
                "mean_batch": round((after["requests"] - before["requests"]) / batches, 2) if batches else 0.0,
                "load_average": round(os.getloadavg()[0], 2),
            })
            print(f"[bench-serve] {label} c={c}: {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rows


# --- report -----------------------------------------------------------------------------------------------------

def markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    lines = [
        "# Serving: `llmrec serve` under load",
        "",
        f"Data set {s['dataset']}; GET /users/{{id}}/recommendations?k={K} for users drawn with a fixed seed, "
        f"closed-loop clients (keep-alive HTTP/1.1 on asyncio streams), {s['duration_s']} s per concurrency level "
        "after a warm-up, on 127.0.0.1 with the load generator on the same machine.",
        f"Server: `llmrec serve --max-batch {s['max_batch']} --batch-window-ms {s['window_ms']} --threads "
        f"{s['threads']}` (micro-batching: concurrent requests share one scorer call). **offline q/s**: "
        f"`Recommender.recommend_many` in-process on batches of {s['max_batch']} users (the service's code path "
        "without HTTP: one scorer call, the history masked, top 10), same thread count. **ratio** = served "
        "requests/s ÷ offline q/s (goal ≥ 0.5 at concurrency 32). Latency in ms, of successful requests.",
        f"Machine: {doc['machine']['platform']}, {doc['machine']['cpus']} CPU cores (shared with other jobs: "
        "see the load average), Python " + doc["machine"]["python"] + ".",
        "",
        "| scorer | offline q/s | concurrency | req/s | ratio | p50 | p95 | p99 | mean batch | errors | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        off = r["offline"]["queries_per_s"]
        for row in r["served"]:
            lines.append(
                f"| {r['scorer']} | {off:g} | {row['concurrency']} | {row['requests_per_s']:g} | {row['ratio']:.2f} | "
                f"{row['p50_ms']:g} | {row['p95_ms']:g} | {row['p99_ms']:g} | {row['mean_batch']:g} | "
                f"{row['errors']} | {row['load_average']:g} |"
            )
    lines += ["", "Scorer specs: " + "; ".join(f"{r['scorer']} = `{r['spec']}`" for r in doc["results"]), "",
              "One run of each level, no repeats: the rows carry no spread, and the table makes no claim that one "
              "scorer or setting serves faster than another beyond the goal line (ratio ≥ 0.5); rerun it on an idle "
              "machine before comparing.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--scorers", nargs="+", default=["sasrec", "hybrid"], help="sasrec, hybrid or scorer specs")
    ap.add_argument("--run", default=None, help="a trained SASRec run folder (default: train one, see the doc)")
    ap.add_argument("--hybrid", default=None, help="hybrid YAML (default: runs/bench-serve/hybrid.yaml, written here)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency level (and offline)")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--window-ms", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server and the offline run")
    ap.add_argument("--start-timeout", type=float, default=600.0, help="seconds to wait for the server to load")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results"))
    args = ap.parse_args()
    if args.duration <= 0 or min(args.concurrency) < 1:
        ap.error("--duration must be > 0 and every --concurrency ≥ 1")

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        for label, spec in resolve(args.scorers, args):
            print(f"[bench-serve] {label}: offline ({spec})", file=sys.stderr, flush=True)
            off, users = offline(spec, args)
            print(f"[bench-serve] {label}: offline {off['queries_per_s']} q/s; serving", file=sys.stderr, flush=True)
            rows = served(label, spec, users, args, Path(tmp))
            for row in rows:
                row["ratio"] = round(row["requests_per_s"] / off["queries_per_s"], 3) if off["queries_per_s"] else 0.0
            entry = {"scorer": label, "spec": spec, "offline": off, "served": rows}
            if spec.startswith("hybrid:"):
                entry["config"] = Path(spec.partition(":")[2]).read_text()  # the fused scorers, as served
            results.append(entry)
    doc = {
        "settings": {"dataset": args.dataset, "concurrency": args.concurrency, "duration_s": args.duration,
                     "max_batch": args.max_batch, "window_ms": args.window_ms, "threads": args.threads, "k": K},
        "machine": {"platform": f"{platform.system()} {platform.machine()}", "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "serve.md").write_text(markdown(doc))
    print(markdown(doc))
    print(f"[bench-serve] wrote {out / 'serve.json'} and {out / 'serve.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
