"""Atomic file writes, content hashing and the user cache root: nothing is half-written if a run is interrupted."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """The one user cache root of llmrec (data downloads, candidate sets, converted models, LLM responses,
    text embeddings): `$LLMREC_CACHE_DIR`, else `$XDG_CACHE_HOME/llmrec`, else `~/.cache/llmrec`."""
    env = os.environ.get("LLMREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmrec"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` then rename onto `path` (same folder, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def update_json(path: str | Path, update: Callable[[Any], Any], default: Any = None) -> Any:
    """Read-modify-write of a JSON file that several processes share (benchmark result tables): under an
    exclusive lock on `path.lock`, `update(current)` gets the file's current content (`default` when absent)
    and returns the new one, which is written atomically. Returns what was written. Writers that read once at
    start and write their whole view at the end drop each other's rows; this cannot."""
    path = Path(path)
    with file_lock(path.with_name(path.name + ".lock")):
        current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default
        new = update(current)
        atomic_write_json(path, new)
        return new


@contextlib.contextmanager
def file_lock(path: str | Path, enabled: bool = True) -> Iterator[None]:
    """An exclusive lock across processes on the file `path` (created if absent, left in place), held for the
    `with` block: `filelock.FileLock`, which takes an flock(2) lock on Unix. enabled=False holds nothing (the
    benchmarks' --no-lock)."""
    if not enabled:
        yield
        return
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_arrays(*arrays: Any) -> str:
    """A short, stable content hash of numpy arrays (dtype, shape and bytes)."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
