"""Bad input through the CLI: exit 2, one `llmrec: error:` line naming the input and what to do, no traceback;
and the protocol fixes that came with it (seeded target insertion in candidate files, counts over the
evaluated users, the real number of negatives, exact timestamps and line numbers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llmrec.cli import main
from llmrec.data import leave_one_out, load_dataset
from llmrec.data.candidates import make_candidates, read_candidate_file
from llmrec.errors import CacheError, DataError
from llmrec.evaluation import evaluate
from llmrec.types import ScoreBatch


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, needle):
    assert code == 2, err
    assert err.startswith("llmrec: error: ") and err.count("\n") == 1, err
    assert needle in err, err
    assert "Traceback" not in err


def write_folder(folder, n_users=200, n_items=40, seed=0):
    """A random folder data set: every user has 6-10 distinct items in time order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["user_id,item_id,timestamp"]
    for u in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), int(rng.integers(6, 11)), replace=False)
        rows += [f"u{u},i{i},{t}" for t, i in enumerate(items)]
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("data") / "rand")


def write_candidate_file(path, ds, split, n_neg=9, seed=0, with_target=False):
    """One line per evaluated user: the target, then n_neg random other items (the target absent unless asked)."""
    rng = np.random.default_rng(seed)
    lines = ["user_id\ttarget_item_id\tcandidates"]
    users = split.eval_users("test")
    for u, t in zip(users, split.targets(users, "test")):
        others = [i for i in range(1, ds.n_items + 1) if i != t]
        negs = [str(ds.item_index[i - 1]) for i in rng.choice(others, n_neg, replace=False)]
        cands = negs + ([str(ds.item_index[t - 1])] if with_target else [])
        lines.append(f"{ds.user_index[u - 1]}\t{ds.item_index[t - 1]}\t{' '.join(cands)}")
    path.write_text("\n".join(lines) + "\n")
    return path


class ColumnScorer:
    """Ignores the user: prefers the first column (sign=-1) or the last one (sign=+1)."""

    def __init__(self, sign):
        self.sign = sign
        self.name = f"column{sign:+d}"

    def fit(self, dataset, split):
        pass

    def score(self, batch: ScoreBatch):
        B, C = batch.candidates.shape
        return self.sign * torch.arange(C, dtype=torch.float32)[None, :].expand(B, C)


# ---- candidates:FILE -------------------------------------------------------------------------------------
def test_candidate_file_target_at_a_seeded_random_position(folder, tmp_path):
    ds = load_dataset(folder)
    split = leave_one_out(ds)
    f = write_candidate_file(tmp_path / "c.tsv", ds, split)
    cs = make_candidates(ds, split, f"candidates:{f}", seed=0)
    assert cs.items.shape == (len(split.eval_users("test")), 10) and cs.meta["targets_inserted"] == len(cs.users)
    for sign in (-1, +1):  # a ranker that ignores the user scores at chance (1/10), not 1.0
        res = evaluate(ColumnScorer(sign), ds, split, cs, ks=(1,), progress=False)
        assert res.metrics["HR@1"] < 0.25, (sign, res.metrics)
    pos = (cs.items == cs.targets[:, None]).argmax(1)
    assert len(set(pos.tolist())) == 10  # every position is used
    again = make_candidates(ds, split, f"candidates:{f}", seed=0)
    other = make_candidates(ds, split, f"candidates:{f}", seed=1)
    assert again.hash == cs.hash and other.hash != cs.hash and other.seed == 1
    # a target the user placed stays where it is
    g = write_candidate_file(tmp_path / "d.tsv", ds, split, with_target=True)
    placed = read_candidate_file(g, ds, split, "test", seed=5)
    assert (placed.items[:, -1] == placed.targets).all() and placed.meta["targets_inserted"] == 0


def test_candidate_file_with_a_repeated_user(capsys, fixtures, tmp_path):
    f = tmp_path / "c.tsv"
    f.write_text("1\t5\t6 7\n\n1\t5\t6 8\n")  # user 1 twice (line 3), after a blank line
    code, _, err = run(capsys, "evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", "pop",
                       "--protocol", f"candidates:{f}")
    assert_one_line_error(code, err, f"{f}: line 3: user '1' already has a candidate set on line 1")


# ---- arguments and protocol strings ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,needle",
    [
        (["--max-users", "-1"], "evaluate: argument --max-users: must be ≥ 0 (0 = all users), got -1"),
        (["--seed", "-1"], "argument --seed: must be ≥ 0, got -1"),
        (["--k", "0"], "argument --k: must be ≥ 1, got 0"),
        (["--k", "abc"], "argument --k: expected a whole number, got 'abc'"),
        (["--set", "seed=-3"], "seed must be ≥ 0, got -3"),
        (["--set", "max_users=-3"], "max_users must be ≥ 0, got -3"),
        (["--set", "k=[0]"], "k must be ≥ 1"),
        (["--protocol", "nir-uf:abc"], "protocol 'nir-uf:abc': expected nir-uf:N with N a whole number, 1 ≤ N < 10"),
        (["--protocol", "nir-uf:0"], "1 ≤ N < 10"),
        (["--protocol", "nir-if:10"], "protocol 'nir-if:10': expected nir-if:N"),
        (["--protocol", "nir-uf:"], "protocol 'nir-uf:'"),
        (["--protocol", "nir-uf"], "protocol 'nir-uf': expected nir-uf:N"),  # NIR's 19 ≥ the 10 items here
        (["--protocol", "sampled:0"], "N a whole number ≥ 1"),
        (["--protocol", "sampled:3:zipf"], "expected sampled:N or sampled:N:pop"),
        (["--protocol", "full:3"], "'full' takes no argument"),
        (["--protocol", "candidates:"], "candidates:FILE needs a file path"),
        (["--scorer", "pop:x"], "scorer 'pop' takes no argument, got --scorer pop:x"),
        (["--scorer", "itemknn:5"], "scorer 'itemknn' takes no argument"),
        (["--scorer", "random:1"], "scorer 'random' takes no argument"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, fixtures, tmp_cache, args, needle):
    base = ["evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", "pop"]
    code, _, err = run(capsys, *base, *args)
    assert_one_line_error(code, err, needle)


def test_nir_filtering_within_the_catalogue_still_works(capsys, fixtures, tmp_cache):
    code, out, _ = run(capsys, "evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", "pop",
                       "--protocol", "nir-uf:9", "--json")
    assert code == 0 and json.loads(out)["n_candidates"] == 9


# ---- what the report counts ------------------------------------------------------------------------------
def test_target_in_candidates_counts_the_evaluated_users(capsys, folder, tmp_cache, tmp_path):
    import pandas as pd

    argv = ["evaluate", "--dataset", folder, "--scorer", "pop", "--protocol", "nir-uf:5", "--json"]
    code, out, _ = run(capsys, *argv)
    whole = json.loads(out)["scorer_report"]["target_in_candidates"]
    code, out, _ = run(capsys, *argv, "--max-users", "20", "--out", tmp_path / "r")
    sub = json.loads(out)
    per_user = pd.read_csv(tmp_path / "r" / "per_user.csv.gz")
    assert code == 0 and sub["n_users"] == 20 == len(per_user)
    # a user whose target is among the candidates has a finite rank; the others are misses (inf)
    assert sub["scorer_report"]["target_in_candidates"] == int(np.isfinite(per_user["rank"]).sum())
    assert whole > sub["scorer_report"]["target_in_candidates"]


def test_sampled_with_too_few_negatives_warns_and_reports_the_real_count(capsys, fixtures, tmp_cache):
    code, out, err = run(capsys, "evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", "pop",
                         "--protocol", "sampled:8", "--json")
    m = json.loads(out)
    assert code == 0
    rep = m["scorer_report"]
    # the fixture's users have seen 4-9 of its 10 items: 1-6 unseen items are left to sample
    assert rep["users_with_fewer_negatives"] == m["n_users"] and 1 <= rep["min_negatives"] < 8
    warning = [ln for ln in err.splitlines() if ln.startswith("llmrec: warning:")]
    assert len(warning) == 1 and "fewer than 8 unseen items" in warning[0]
    code, out, err = run(capsys, "evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", "pop",
                         "--protocol", "sampled:1", "--json")
    assert "users_with_fewer_negatives" not in json.loads(out).get("scorer_report", {}) and "warning" not in err
    # far more than the catalogue: as many columns as there are items, not an array of 10^10
    code, out, err = run(capsys, "evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", "pop",
                         "--protocol", "sampled:10000000000", "--json")
    assert code == 0 and json.loads(out)["n_candidates"] == 11 and "llmrec: warning:" in err


# ---- cached candidate files --------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "garbage", "json"])
def test_corrupted_cached_candidate_file(capsys, fixtures, tmp_cache, damage):
    argv = ["evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", "pop", "--protocol", "sampled:3"]
    assert run(capsys, *argv)[0] == 0
    (npz,) = tmp_cache.rglob("*.npz")
    if damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:40])
    elif damage == "garbage":
        npz.write_bytes(b"\x00garbage" * 10)
    else:
        npz.with_suffix(".json").write_text("{not json")
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, f"it is a cached candidate set: delete {npz} and {npz.with_suffix('.json')}")
    assert str(npz) in err.split(";")[0]
    npz.unlink()
    npz.with_suffix(".json").unlink()
    assert run(capsys, *argv)[0] == 0  # rebuilt


def test_cache_error_is_a_cache_error(tiny, tmp_cache):
    ds, split = tiny
    make_candidates(ds, split, "sampled:2")
    (npz,) = tmp_cache.rglob("*.npz")
    npz.write_bytes(b"")
    with pytest.raises(CacheError, match="unreadable candidate file"):
        make_candidates(ds, split, "sampled:2")


# ---- data files --------------------------------------------------------------------------------------------
def test_csv_line_numbers_count_blank_lines(capsys, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "interactions.csv").write_text("user_id,item_id,timestamp\n1,2,3\n\n\n1,5,x\n")
    code, _, err = run(capsys, "stats", d)
    assert_one_line_error(code, err, "interactions.csv: line 5: field 'timestamp' = 'x' is not a number")
    (d / "interactions.csv").write_text('user_id,item_id\n"a\nb",2\n\n1,\n')  # a quoted line break, a blank line
    code, _, err = run(capsys, "stats", d)
    assert_one_line_error(code, err, "interactions.csv: line 5: field 'item_id' is empty")
    (d / "interactions.csv").write_text("user_id,item_id\r\n1,2\r\n  \r\n,\r\n")  # spaces: blank; ",": a row
    code, _, err = run(capsys, "stats", d)
    assert_one_line_error(code, err, "interactions.csv: line 4: field 'user_id' is empty")
    (d / "interactions.csv").write_text("user_id,item_id\n1,2\n")
    (d / "items.csv").write_text("item_id,title\n2,a\n\n2,b\n")
    code, _, err = run(capsys, "stats", d)
    assert_one_line_error(code, err, "items.csv: line 4: item_id '2' repeated (first on line 2)")


def test_float_timestamps_are_refused_not_truncated(capsys, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "interactions.csv").write_text("user_id,item_id,timestamp\n1,2,1700000000\n1,3,1700000000.7\n")
    code, _, err = run(capsys, "stats", d)
    assert_one_line_error(code, err, "line 3: field 'timestamp' = '1700000000.7' is not an integer")
    # whole numbers are kept exactly, even beyond float precision (nanoseconds)
    (d / "interactions.csv").write_text("user_id,item_id,timestamp\n1,2,1700000000000000001\n1,3,1700000000000000000\n")
    ds = load_dataset(d)
    assert ds.interactions["timestamp"].tolist() == [1700000000000000000, 1700000000000000001]
    assert [ds.item_index[i - 1] for i in ds.interactions["item"]] == ["3", "2"]


def test_sequence_file_line_numbers_ignore_unicode_line_breaks(capsys, tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("a 1\u2028b 2\nc\n")  # U+2028 is not a line break in a data file: line 2 is "c"
    with pytest.raises(DataError, match="line 2: expected a user id followed by"):
        load_dataset(f)


# ---- run:DIR -----------------------------------------------------------------------------------------------
def test_run_scorer_refuses_another_data_set_with_the_same_catalogue(capsys, fixtures, tmp_path, tmp_cache):
    from llmrec.models import build_model
    from llmrec.models.checkpoint import save_model

    ds = load_dataset("ml-100k", fixtures)
    split = leave_one_out(ds)
    other = tmp_path / "other"  # the same 10 items, other users: another split
    other.mkdir()
    rows = ["user_id,item_id,timestamp"] + [f"v{u},{i},{t}" for u in range(10) for t, i in
                                            enumerate(ds.item_index[(np.arange(4) + u) % 10])]
    (other / "interactions.csv").write_text("\n".join(rows) + "\n")
    assert load_dataset(other).n_items == ds.n_items
    run_dir = tmp_path / "run"
    model = build_model("sasrec", ds.n_items, {"max_len": 8, "hidden": 8, "n_layers": 1})
    save_model(run_dir, model, {"dataset": "ml-100k", "dataset_spec": "ml-100k", "split_hash": split.hash,
                                "task": "next-item"})
    ok = run(capsys, "evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", f"run:{run_dir}")
    assert ok[0] == 0, ok[2]
    code, _, err = run(capsys, "evaluate", "--dataset", other, "--scorer", f"run:{run_dir}")
    assert_one_line_error(code, err, f"{run_dir}: trained on data set 'ml-100k' (split {split.hash}), but data "
                                     f"set 'other' has split")
    assert "--dataset ml-100k" in err
