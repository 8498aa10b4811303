"""`llmrec serve`: recommendations over HTTP from any scorer, with a page at `/` (FastAPI + uvicorn).

Examples:
  llmrec serve --dataset ml-100k --scorer run:runs/sasrec-ml-100k              # http://127.0.0.1:8080/
  llmrec serve --dataset ml-100k --scorer hybrid:eval/configs/hybrids/zsp_fusion.yaml --port 9000
  curl '127.0.0.1:8080/users/1/recommendations?k=5'
  curl -X POST 127.0.0.1:8080/recommendations -H 'content-type: application/json' \\
       -d '{"history": [50, 172, 181], "k": 5}'

Endpoints: GET /health; GET /users/{id}/recommendations?k=; POST /recommendations {"history": [...], "k": K};
GET / (the page: pick a user or paste a history; the history's titles and the top K with component scores).
Answers: {"user", "items": [{"item_id", "title", "score", "components"?}]}; bad requests: a 4xx
{"error", "field"}. The scorer is fitted once at start; concurrent requests are micro-batched into one scorer
call (--batch-window-ms, --max-batch). Listens on 127.0.0.1 (this machine only) unless --host says otherwise,
which warns; --api-key (or $LLMREC_API_KEY) makes every route but /health require 'Authorization: Bearer KEY'.
To scale out, run several of these (one per core group, or per machine) behind any HTTP load balancer.
Needs the serve extra: pip install 'llmrec[serve]'.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg

    p = sub.add_parser("serve", help="recommendations over HTTP (FastAPI) from any scorer, with a page at /",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="registered name or path")
    p.add_argument("--scorer", help="any scorer spec: pop, itemknn, run:DIR, text:ENC, hybrid:FILE.yaml, llm:RANKER")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, this machine "
                   "only; any other warns, see --api-key)")
    p.add_argument("--port", type=int_at_least(1), default=8080, help="port (default 8080)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every route but /health "
                   "(default: $LLMREC_API_KEY, else none)")
    p.add_argument("--llm", help="LLM backend for llm:* scorers and hybrid components (hf:smollm2-135m, openai:URL)")
    p.add_argument("--candidates", type=int_at_least(0),
                   help="rank only the retriever's top N unseen items (llm:* scorers: default 20)")
    p.add_argument("--retriever", help="the first stage for --candidates (default itemknn)")
    p.add_argument("--max-k", type=int_at_least(1), default=100, help="the largest k a request may ask (default 100)")
    p.add_argument("--batch-window-ms", type=float, default=5.0,
                   help="how long a batch may wait for more concurrent requests (default 5)")
    p.add_argument("--max-batch", type=int_at_least(1), default=64, help="requests per scorer call at most (default 64)")
    p.add_argument("--max-body-kb", type=int_at_least(1), default=256, help="request body limit (default 256 KiB)")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch threads (default: torch's)")
    p.add_argument("--access-log", action="store_true", help="log every request (default: errors only)")
    p.add_argument("--seed", type=seed_arg, help="seed of the scorer")
    add_data_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.config import load_config
    from llmrec.errors import ConfigError
    from llmrec.llm.serve import is_loopback
    from llmrec.pipelines.recommend import Recommender, RecommenderConfig

    try:
        import uvicorn

        from llmrec.serving.app import ServeConfig, create_app
    except ImportError as e:
        raise ConfigError(f"llmrec serve needs FastAPI and uvicorn ({e.name} is missing): "
                          f"pip install 'llmrec[serve]'") from None
    if not args.scorer and not args.config:
        raise ConfigError("serve needs --scorer SPEC (pop, itemknn, run:DIR, hybrid:FILE.yaml, …)")
    base: dict[str, Any] = {"max_k": args.max_k}
    for key in ("dataset", "scorer", "llm", "seed", "candidates", "retriever"):
        value = getattr(args, key, None)
        if value is not None:
            base[key] = value
    rcfg = load_config(RecommenderConfig, args.config, args.overrides, base=base)
    try:
        scfg = ServeConfig(host=args.host, port=args.port, api_key=args.api_key or os.environ.get("LLMREC_API_KEY"),
                           batch_window_ms=args.batch_window_ms, max_batch=args.max_batch,
                           max_body_bytes=args.max_body_kb * 1024)
    except ValueError as e:
        raise ConfigError(f"serve: {e}") from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not is_loopback(scfg.host):  # printed now, not at exit: this command runs until interrupted
        where = scfg.host or "all interfaces"
        msg = (f"serving on {where}, reachable from other machines; requests must carry the API key"
               if scfg.api_key else
               f"serving on {where} without an API key: anyone who can reach this machine can use the service; "
               f"pass --api-key KEY, or use --host 127.0.0.1")
        print(f"llmrec: warning: {msg}", file=sys.stderr, flush=True)
    print(f"llmrec: loading {rcfg.scorer} on {rcfg.dataset} …", file=sys.stderr, flush=True)
    recommender = Recommender.load(rcfg, args.data_dir)
    app = create_app(recommender, scfg)
    shown = f"[{scfg.host}]" if ":" in scfg.host else scfg.host
    print(f"llmrec: serving {rcfg.scorer} on {recommender.dataset.name} at http://{shown}:{scfg.port}/ "
          f"(the page at /, GET /users/ID/recommendations?k=, POST /recommendations; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=scfg.host, port=scfg.port, log_level="info" if args.access_log else "warning",
                access_log=args.access_log)
    return 0
