"""update_json: a locked read-modify-write, so benchmark writers in several processes keep each other's rows."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from llmrec.io import update_json


def _append(path: str, i: int) -> None:
    update_json(path, lambda cur: {"runs": [*(cur or {"runs": []})["runs"], i]})


def test_update_json_sees_the_file_and_writes_the_result(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    assert update_json(p, lambda cur: {"n": 1 if cur is None else cur["n"] + 1}) == {"n": 1}
    assert update_json(p, lambda cur: {"n": cur["n"] + 1}) == {"n": 2}
    assert json.loads(p.read_text()) == {"n": 2}
    assert update_json(p, lambda cur: cur, default={"unused": True}) == {"n": 2}  # default only when absent


def test_update_json_keeps_every_concurrent_writers_rows(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append, args=(str(p), i)) for i in range(8)]
    for q in procs:
        q.start()
    for q in procs:
        q.join()
        assert q.exitcode == 0
    assert sorted(json.loads(p.read_text())["runs"]) == list(range(8))


def test_update_json_leaves_the_file_unchanged_when_the_update_fails(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    update_json(p, lambda cur: {"runs": [1]})

    def boom(cur: object) -> object:
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        update_json(p, boom)
    assert json.loads(p.read_text()) == {"runs": [1]}
