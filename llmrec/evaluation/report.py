"""Result tables: JSON + Markdown under eval/results/, each row naming its protocol, plus machine facts."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmrec.io import atomic_write_json, atomic_write_text


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None, digits: int = 4) -> str:
    if not rows:
        return "(no rows)\n"
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_results(
    stem: str | Path,
    title: str,
    rows: list[dict[str, Any]],
    protocol: str,
    command: str,
    columns: list[str] | None = None,
    notes: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.md`: the rows, the protocol they were measured on, the command that
    reproduces them and the machine."""
    stem = Path(stem)
    machine = machine_info()
    atomic_write_json(
        stem.with_suffix(".json"),
        {"title": title, "protocol": protocol, "command": command, "machine": machine, "rows": rows,
         **(extra or {})},
    )
    md = [f"# {title}", "", f"Protocol: {protocol}", "", f"Reproduce: `{command}`", "",
          f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}"
          + (f", GPU {machine['gpu']}" if machine["gpu"] else "") + f", {machine['date']}.", "",
          markdown_table(rows, columns)]
    if notes:
        md += ["", *[f"- {n}" for n in notes]]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(md) + "\n")
    return stem.with_suffix(".json"), stem.with_suffix(".md")
