"""`llmrec serve-llm`: start a vLLM OpenAI-compatible server for a model and print its base URL."""

from __future__ import annotations

import argparse
import json
import signal
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve-llm",
        help="start a vLLM OpenAI-compatible server for a model",
        description="Start a vLLM OpenAI-compatible server (default: the embedded SmolLM2-135M, converted once to "
        "safetensors), wait until it is healthy and print its base URL; use it with --llm openai:<url>#<model>. "
        "Runs until interrupted unless --detach.",
    )
    p.add_argument(
        "--model", default="smollm2-135m", help="alias, model folder or hub id (default: smollm2-135m)"
    )
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, this machine "
                   "only; any other warns, see --api-key)")
    p.add_argument("--api-key", default=None, help="require this key from clients (passed to vLLM as --api-key; "
                   "clients set OPENAI_API_KEY; default: $VLLM_API_KEY, else none)")
    p.add_argument(
        "--served-name", default=None, help="model name clients use (default: the alias or folder name)"
    )
    p.add_argument("--max-model-len", type=int, default=2048, help="context length to serve (default: 2048)")
    p.add_argument(
        "--dtype", default="bfloat16", help="weights/activations dtype on the server (default: bfloat16)"
    )
    p.add_argument(
        "--python",
        default=None,
        help="a Python with vllm installed (default: $LLMREC_VLLM_PYTHON, this one, or .venv-vllm/bin/python)",
    )
    p.add_argument("--lora", action="append", default=[], metavar="ADAPTER_DIR",
                   help="serve a LoRA adapter made by `llmrec tune-llm` beside the base model, under the folder's "
                        "name (--llm openai:URL#NAME); repeatable")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for health (default: 300)")
    p.add_argument("--log", default=None, help="server log file (default: $TMPDIR/llmrec-vllm-<port>.log)")
    p.add_argument(
        "--detach", action="store_true", help="leave the server running in the background and exit"
    )
    p.add_argument("--json", action="store_true", help="print {base_url, model, spec, pid, log} as JSON")
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="only convert/resolve the model and print its folder (what the server would load)",
    )
    p.add_argument("extra", nargs="*", help="further vLLM server arguments, after --")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from llmrec.llm.models import resolve_model
    from llmrec.llm.serve import ServerConfig, exposure_warning, start_server

    if args.prepare_only:
        print(resolve_model(args.model))
        return 0
    cfg = ServerConfig(
        model=args.model,
        host=args.host,
        port=args.port,
        served_name=args.served_name,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        python=args.python,
        extra_args=tuple(args.extra),
        api_key=args.api_key or os.environ.get("VLLM_API_KEY") or None,
        loras=tuple(args.lora),
    )
    warning = exposure_warning(cfg.host, cfg.api_key)
    if warning:  # printed now, not at exit: this command runs until interrupted
        print(f"llmrec: warning: {warning}", file=sys.stderr, flush=True)
    print(
        f"llmrec: starting vLLM for {args.model} (waiting up to {args.timeout:g} s)",
        file=sys.stderr,
        flush=True,
    )
    server = start_server(cfg, log_path=args.log, timeout_s=args.timeout)
    info = {
        "base_url": server.base_url,
        "model": server.model,
        "spec": server.spec,
        "pid": server.process.pid,
        "log": str(server.log_path),
        "adapters": {n: f"openai:{server.base_url}#{n}" for n in server.adapters},
    }
    print(json.dumps(info) if args.json else server.base_url, flush=True)
    if args.detach:
        print(f"llmrec: server pid {server.process.pid}; --llm {server.spec}", file=sys.stderr)
        for n in server.adapters:
            print(f"llmrec: adapter {n}: --llm openai:{server.base_url}#{n}", file=sys.stderr)
        return 0
    print(f"llmrec: serving; use --llm {server.spec}; Ctrl-C stops it", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        return int(server.process.wait() or 0)
    except KeyboardInterrupt:
        server.stop()
        return 0
