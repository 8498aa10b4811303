"""Reading raw text files with errors that name the file and line (never a traceback from deep inside pandas)."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path
from typing import Any

from llmrec.errors import DataError


def require_file(path: Path, what: str = "") -> Path:
    if not path.is_file():
        hint = f" ({what})" if what else ""
        raise DataError(f"{path}: file not found{hint}")
    return path


def read_bytes(path: Path) -> bytes:
    require_file(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def decode(data: bytes, path: Path, encoding: str = "utf-8") -> str:
    """Decode bytes, naming the line and byte offset of the first invalid byte."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}: line {line}: not valid {encoding.upper()} (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None


def read_text(path: Path, encoding: str = "utf-8") -> str:
    return decode(read_bytes(path), path, encoding)


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """Lines without their newline (`\\n` or `\\r\\n`); a trailing empty line is dropped. Only these end a
    line (not the other Unicode line breaks `str.splitlines` knows), so line numbers match what an editor shows."""
    text = read_text(path, encoding)
    lines = text.split("\n" if "\n" in text or "\r" not in text else "\r")  # "\r" alone: old Mac files
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def read_csv(path: Path, required: list[str], sep: str = ",", encoding: str = "utf-8") -> Any:
    """A CSV with a header row as a DataFrame of strings; checks required columns.

    The frame's index is each row's line number in the file (the header is line 1; blank lines and line
    breaks inside quoted fields are counted), so messages can name the line; blank lines are dropped.
    """
    import numpy as np
    import pandas as pd

    text = read_text(path, encoding)
    if not text.strip():
        raise DataError(f"{path}: file is empty (expected a header row with {', '.join(required)})")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True,
                            skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        msg = str(e).replace("Error tokenizing data. C error: ", "").strip()
        raise DataError(f"{path}: malformed CSV: {msg}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column {missing[0]!r} (header is {', '.join(frame.columns)}; expected "
            f"{', '.join(required)})"
        )
    frame = frame.fillna("").astype(str)
    # Line breaks as the CSV parser sees them: \r\n, \n or a lone \r.
    lines = np.arange(len(frame), dtype=np.int64) + 2  # row i starts on line i + 2 (the header is line 1) …
    if '"' in text:  # … plus the line breaks inside quoted fields of the header and the rows before it
        header_breaks = sum(len(_LINE_BREAK.findall(str(c))) for c in frame.columns)
        breaks = frame.apply(lambda col: col.str.count(_LINE_BREAK.pattern)).sum(axis=1).to_numpy(dtype=np.int64)
        lines += header_breaks + np.concatenate([[0], np.cumsum(breaks)[:-1]])
    frame.index = pd.Index(lines, name="line")
    if _BLANK_LINE.search(text):  # blank lines became rows of empty fields: drop them (a row "," stays)
        physical = _LINE_BREAK.split(text)
        blank = np.array([n <= len(physical) and not physical[n - 1].strip() for n in lines], dtype=bool)
        frame = frame[~blank]
    return frame


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BLANK_LINE = re.compile(r"(?:\r\n|\r|\n)[ \t]*(?:\r\n|\r|\n)")


def numeric_column(frame: Any, column: str, path: Path, kind: str = "float") -> Any:
    """Convert a string column to numbers, naming the first bad line (the frame's index holds line numbers,
    as `read_csv` makes it). `kind="int"` accepts whole numbers only, exactly (no float round trip): a value
    with a fraction is refused, never truncated."""
    import numpy as np
    import pandas as pd

    raw = frame[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & (raw != "")
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{path}: line {frame.index[row]}: field {column!r} = {frame[column].iloc[row]!r} is not a number"
        )
    if kind == "int":
        empty = (raw == "").to_numpy()
        if empty.any():
            row = int(np.argmax(empty))
            raise DataError(f"{path}: line {frame.index[row]}: field {column!r} is empty (expected an integer)")
        whole = raw.str.fullmatch(r"[+-]?\d+").to_numpy(dtype=bool)
        if not whole.all():
            row = int(np.argmax(~whole))
            raise DataError(
                f"{path}: line {frame.index[row]}: field {column!r} = {frame[column].iloc[row]!r} is not an "
                f"integer: write whole numbers in digits (e.g. Unix seconds); scale fractional values (e.g. to "
                f"milliseconds) — they are never truncated"
            )
        if values.dtype.kind != "i":  # whole numbers beyond int64 (pandas fell back to uint64 or float)
            big = next(i for i, v in enumerate(raw) if not -(2**63) <= int(v) < 2**63)
            raise DataError(f"{path}: line {frame.index[big]}: field {column!r} = {raw.iloc[big]!r} does not fit "
                            f"in 64 bits")
        return values.to_numpy(dtype=np.int64)
    return values.astype("float64")
