"""Property: whatever malformed data file or protocol string reaches the CLI, it answers with exit 0, or with
exit 2 and exactly one `llmrec: error:` line first on stderr — never a traceback, never another exit code.

Random interactions.csv / items.csv folders, sequence .txt files, protocol strings and candidate files, fed to
`llmrec.cli.main` in-process (an exception escaping `main` fails the test with its traceback).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrec.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
# modest by default (the suite stays fast); LLMREC_PROPERTY_EXAMPLES=2000 for a longer hunt
SETTINGS = settings(max_examples=int(os.environ.get("LLMREC_PROPERTY_EXAMPLES", 50)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# tokens that break parsers: empty, spaces, quotes, separators, numbers of every shape, unicode line breaks
TOKENS = st.sampled_from(
    ["", " ", "1", "2", "3", "7", "a", "b", "u1", "i1", "-3", "0", "1.5", "1e3", "nan", "inf", "99999999999999999999",
     '"', '""', '"a,b"', ",", "\t", ";", "é", "\u2028", "\x0c", "\x00", "\r", "user_id", "item_id"]
)
FIELD = st.lists(TOKENS, min_size=0, max_size=3).map("".join)
HEADERS = st.sampled_from(
    ["user_id,item_id", "user_id,item_id,timestamp", "user_id,item_id,timestamp,rating", "user_id,item_id,rating",
     "item_id,user_id", "user,item", "user_id", "", "user_id,item_id,timestamp,timestamp", " user_id , item_id "]
)


def csv_text(header: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    row = st.lists(FIELD, min_size=0, max_size=5).map(",".join)
    valid = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(0, 50)).map(lambda t: f"{t[0]},{t[1]},{t[2]}")
    rows = st.lists(st.one_of(row, valid, st.just("")), min_size=0, max_size=12)
    newline = st.sampled_from(["\n", "\r\n"])
    return st.builds(lambda h, r, nl: nl.join([h, *r]) + nl, header, rows, newline)


def raw_bytes(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """UTF-8 text, sometimes with an invalid byte spliced in."""
    return st.tuples(text, st.booleans(), st.integers(0, 200)).map(
        lambda t: (t[0].encode()[: t[2]] + b"\xff" + t[0].encode()[t[2] :]) if t[1] else t[0].encode()
    )


PROTOCOLS = st.one_of(
    st.sampled_from(["full", "nir", "sampled", "nir-uf", "nir-if", "candidates", ""]),
    st.tuples(
        st.sampled_from(["full", "nir", "sampled", "nir-uf", "nir-if", "sampled:3", "bogus"]),
        st.sampled_from(["0", "1", "3", "9", "10", "19", "-1", "abc", "", "3:pop", "3:zipf", "1.5", " 3", "٣",
                         "99999999999999999999"]),
    ).map(lambda t: f"{t[0]}:{t[1]}"),
    st.text(min_size=0, max_size=12),
)


def call(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def check(code: int, err: str) -> None:
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    if code == 2:
        lines = err.splitlines()
        assert lines and lines[0].startswith("llmrec: error: "), err
        assert sum(ln.startswith("llmrec: error:") for ln in lines) == 1, err
        assert all(ln.startswith("llmrec: warning: ") for ln in lines[1:]), err


@contextlib.contextmanager
def sandbox():
    """A fresh folder, also the llmrec cache (candidate files are cached there)."""
    with tempfile.TemporaryDirectory() as d:
        old = os.environ.get("LLMREC_CACHE_DIR")
        os.environ["LLMREC_CACHE_DIR"] = str(Path(d) / "cache")
        try:
            yield Path(d)
        finally:
            if old is None:
                os.environ.pop("LLMREC_CACHE_DIR", None)
            else:
                os.environ["LLMREC_CACHE_DIR"] = old


@SETTINGS
@given(
    inter=raw_bytes(csv_text(HEADERS)),
    items=st.one_of(st.none(), raw_bytes(csv_text(st.sampled_from(["item_id,title", "item_id", "title", ""])))),
    command=st.sampled_from(["stats", "evaluate"]),
)
def test_malformed_folders(inter, items, command):
    with sandbox() as d:
        folder = d / "data"
        folder.mkdir()
        (folder / "interactions.csv").write_bytes(inter)
        if items is not None:
            (folder / "items.csv").write_bytes(items)
        argv = ["stats", str(folder)] if command == "stats" else [
            "evaluate", "--dataset", str(folder), "--scorer", "pop", "--protocol", "sampled:2"]
        check(*call(*argv))


@SETTINGS
@given(
    lines=st.lists(st.lists(st.one_of(TOKENS, st.sampled_from(["u1", "u2", "i1", "i2", "i3"])), max_size=5)
                   .map(" ".join), max_size=10),
    bad_byte=st.booleans(),
    protocol=st.sampled_from(["full", "sampled:3", "nir-uf:2", "nir-if:1"]),
)
def test_malformed_sequence_files(lines, bad_byte, protocol):
    with sandbox() as d:
        f = d / "seq.txt"
        data = "\n".join(lines).encode()
        f.write_bytes(data + (b"\xfe\n" if bad_byte else b""))
        check(*call("evaluate", "--dataset", str(f), "--scorer", "pop", "--protocol", protocol))


CANDIDATE_LINES = st.lists(
    st.tuples(st.sampled_from(["1", "2", "3", "4", "9", "x", ""]), st.sampled_from(["5", "7", "1", "11", ""]),
              st.lists(st.sampled_from(["1", "2", "3", "5", "6", "7", "10", "99", ""]), max_size=5).map(" ".join),
              st.sampled_from(["\t", " ", "\t\t"]))
    .map(lambda t: t[3].join(t[:3])),
    max_size=6,
)


@SETTINGS
@given(protocol=PROTOCOLS, candidate_lines=st.one_of(st.none(), CANDIDATE_LINES),
       scorer=st.sampled_from(["pop", "random", "pop:x", "itemknn", "nope", "run:/no/such/run"]),
       extra=st.sampled_from([[], ["--max-users", "2"], ["--phase", "valid"], ["--k", "3"]]))
def test_protocol_strings_and_candidate_files(protocol, candidate_lines, scorer, extra):
    with sandbox() as d:
        if candidate_lines is not None:
            f = d / "c.tsv"
            f.write_text("\n".join(candidate_lines) + "\n")
            protocol = f"candidates:{f}"
        check(*call("evaluate", "--dataset", "ml-100k", "--data-dir", str(FIXTURES), "--scorer", scorer,
                    "--protocol", protocol, *extra))
