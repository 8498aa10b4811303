"""Reading raw text files with errors that name the file and line (never a traceback from deep inside pandas)."""

from __future__ import annotations

import gzip
import io
import json
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
    """Lines without their newline; a trailing empty line is dropped."""
    lines = read_text(path, encoding).splitlines()
    return lines


def read_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def read_csv(path: Path, required: list[str], sep: str = ",", encoding: str = "utf-8") -> Any:
    """A CSV with a header row as a DataFrame of strings; checks required columns."""
    import pandas as pd

    text = read_text(path, encoding)
    if not text.strip():
        raise DataError(f"{path}: file is empty (expected a header row with {', '.join(required)})")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.ParserError as e:
        msg = str(e).replace("Error tokenizing data. C error: ", "")
        raise DataError(f"{path}: malformed CSV: {msg}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column {missing[0]!r} (header is {', '.join(frame.columns)}; expected "
            f"{', '.join(required)})"
        )
    return frame


def numeric_column(frame: Any, column: str, path: Path, kind: str = "float") -> Any:
    """Convert a string column to numbers, naming the first bad line (header = line 1)."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    bad = values.isna() & (frame[column].str.strip() != "")
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{path}: line {row + 2}: field {column!r} = {frame[column].iloc[row]!r} is not a number"
        )
    if kind == "int":
        if values.isna().any():
            row = int(np.argmax(values.isna().to_numpy()))
            raise DataError(f"{path}: line {row + 2}: field {column!r} is empty (expected an integer)")
        return values.astype("int64")
    return values.astype("float64")
