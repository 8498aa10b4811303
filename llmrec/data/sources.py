"""Where raw data comes from: `--data-dir`, else `$LLMREC_DATA_DIR`, else `../shared/data` beside a checkout,
else the user cache, which real download code fills (sha256-checked) for users with internet.

Downloads are tested against local `file://` URLs, never the network.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llmrec.errors import DataError
from llmrec.io import cache_dir, sha256_file


def checkout_root() -> Path | None:
    """The source checkout holding this package (None for an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "llmrec").is_dir() else None


def data_roots(data_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """Candidate data folders in priority order, each with where it came from (for error messages)."""
    if data_dir is not None:
        return [(Path(data_dir).expanduser(), "--data-dir")]
    roots: list[tuple[Path, str]] = []
    env = os.environ.get("LLMREC_DATA_DIR")
    if env:
        roots.append((Path(env).expanduser(), "$LLMREC_DATA_DIR"))
    root = checkout_root()
    if root is not None and (root.parent / "shared" / "data").is_dir():
        roots.append(((root.parent / "shared" / "data").resolve(), "../shared/data beside the checkout"))
    roots.append((cache_dir() / "data", "the user cache"))
    return roots


@dataclass(frozen=True)
class RemoteFile:
    """A public original with its checksum; `member` files are checked after extraction when given."""

    url: str
    sha256: str
    size: int | None = None


def download(remote: RemoteFile, dest: Path, *, timeout: float = 60.0, quiet: bool = False) -> Path:
    """Fetch `remote.url` to `dest` atomically, verifying sha256; a mismatch deletes the file and raises."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and sha256_file(dest) == remote.sha256:
        return dest
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if not quiet:
            print(f"llmrec: downloading {remote.url}", file=sys.stderr)
        try:
            with urllib.request.urlopen(remote.url, timeout=timeout) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f, length=1 << 20)
        except (urllib.error.URLError, OSError) as e:
            raise DataError(f"could not download {remote.url}: {getattr(e, 'reason', e)}") from None
        got = sha256_file(tmp)
        if got != remote.sha256:
            raise DataError(f"{remote.url}: sha256 {got} does not match the expected {remote.sha256}; not using it")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def extract_zip(archive: Path, into: Path, strip: str | None = None) -> None:
    """Extract `archive` into `into` atomically (a temporary folder renamed into place); members outside the
    target (absolute paths, `..`) are refused."""
    into.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{into.name}.", dir=into.parent))
    try:
        with zipfile.ZipFile(archive) as z:
            for m in z.infolist():
                name = m.filename
                if strip and name.startswith(strip):
                    name = name[len(strip) :]
                if not name or name.endswith("/"):
                    continue
                target = (tmp / name).resolve()
                if tmp.resolve() not in target.parents:
                    raise DataError(f"{archive}: refusing member outside the target folder: {m.filename}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if into.exists():
            shutil.rmtree(into)
        os.replace(tmp, into)
    except zipfile.BadZipFile:
        raise DataError(f"{archive}: not a valid zip file") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
