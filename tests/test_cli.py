"""The `llmrec` command line: JSON keys, exit codes and one-line errors (no tracebacks) for bad input."""

import json
import subprocess
import sys

import pytest

from llmrec.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_stats_json_on_fixture_and_paths(capsys, fixtures):
    code, out, _ = run(capsys, "stats", "ml-100k", "--data-dir", str(fixtures), "--json")
    st = json.loads(out)
    assert code == 0 and (st["users"], st["items"], st["interactions"]) == (6, 10, 34)
    for path in ("sequences.txt", "pairs.txt", "csv_folder", "sequences.txt.gz"):
        code, out, _ = run(capsys, "stats", str(fixtures / path), "--json")
        assert code == 0 and json.loads(out)["interactions"] == 34


def test_stats_real_data(capsys, shared_data):
    code, out, _ = run(capsys, "stats", "ml-100k", "--json")
    st = json.loads(out)
    assert (st["users"], st["items"], st["interactions"]) == (943, 1682, 100000)
    code, out, _ = run(capsys, "stats", "beauty", "--json")
    st = json.loads(out)
    assert (st["users"], st["items"], st["interactions"]) == (22363, 12101, 198502)


def test_evaluate_json(capsys, fixtures, tmp_cache, tmp_path):
    code, out, _ = run(capsys, "evaluate", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--scorer", "pop",
                       "--protocol", "sampled:3", "--k", "2", "--json", "--out", str(tmp_path / "r"))
    m = json.loads(out)
    assert code == 0
    for key in ("HR@10", "NDCG@10", "MRR", "n_users", "HR@2", "candidates_hash"):
        assert key in m
    assert (tmp_path / "r" / "metrics.json").is_file() and (tmp_path / "r" / "config.json").is_file()
    code, out, _ = run(capsys, "evaluate", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--scorer", "pop",
                       "--protocol", "sampled:3", "--max-users", "3", "--json")
    assert json.loads(out)["n_users"] == 3


@pytest.mark.parametrize(
    "argv,message",
    [
        (["stats", "{fx}/nope"], "unknown data set"),
        (["stats", "netflix"], "known: beauty, ml-100k, nir-ml-100k, sports, toys"),
        (["stats", "{fx}/ambiguous.txt"], "ambiguous format"),
        (["stats", "ml-100k", "--data-dir", "{fx}", "--set", "data.k_core=50"], "no interactions left after filtering"),
        (["stats", "ml-100k", "--data-dir", "{fx}", "--set", "data.kcore=5"], "unknown key 'kcore'"),
        (["evaluate", "--dataset", "ml-100k", "--data-dir", "{fx}", "--scorer", "magic"], "unknown scorer 'magic'; known:"),
        (["evaluate", "--dataset", "ml-100k", "--data-dir", "{fx}", "--protocol", "top:5"], "unknown protocol"),
        (["evaluate", "--dataset", "ml-100k", "--data-dir", "{fx}", "--set", "colour=red"], "unknown key 'colour'"),
        (["evaluate", "--scorer", "pop"], "no data set given"),
        (["stats", "ml-100k", "--data-dir", "{fx}/../nowhere"], "not found"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, fixtures, tmp_cache, argv, message):
    argv = [a.replace("{fx}", str(fixtures)) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.startswith("llmrec: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_files_through_the_console_script(tmp_path):
    bad = tmp_path / "latin.txt"
    bad.write_bytes("u1 caf\xe9\n".encode("latin-1"))
    missing_col = tmp_path / "folder"
    missing_col.mkdir()
    (missing_col / "interactions.csv").write_text("user_id,item_id,timestamp\n1,2,x\n")
    for target, needle in ((bad, "line 1: not valid UTF-8"), (missing_col, "interactions.csv: line 2")):
        proc = subprocess.run([sys.executable, "-m", "llmrec", "stats", str(target)], capture_output=True, text=True)
        assert proc.returncode == 2
        assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("datasets", "stats", "evaluate", "demo"):
        assert cmd in out


def test_datasets_lists_terms(capsys, fixtures):
    code, out, _ = run(capsys, "datasets", "--data-dir", str(fixtures), "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"ml-100k", "beauty", "sports", "toys", "nir-ml-100k"}
    assert "no redistribution" in rows["ml-100k"]["terms"]
