"""`llmrec recommend` on the tiny fixture with a fake backend: JSON keys, the NIR summary, the held-out item kept
out of the history and (with the default protocol) never forced into the candidates."""

from __future__ import annotations

import json

import pytest
from ranker_fakes import FakeBackend

from llmrec.cli import main


@pytest.fixture()
def fake_llm(monkeypatch):
    backends = []

    def make(spec=None, **kw):
        backends.append(FakeBackend())
        return backends[-1]

    monkeypatch.setattr("llmrec.llm.make_backend", make)
    return backends


@pytest.mark.parametrize("method", ["nir", "listwise", "verbalizer", "pointwise"])
def test_recommend_json(method, fixtures, tmp_cache, fake_llm, capsys):
    rc = main(["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--user", "1", "--method", method,
               "--protocol", "nir-uf:4", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["user"] == 1 and out["method"] == method and out["protocol"] == "nir-uf:4"
    assert len(out["items"]) == 4
    assert all(set(it) == {"item_id", "title", "score"} for it in out["items"])
    scores = [it["score"] for it in out["items"]]
    assert scores == sorted(scores, reverse=True)
    assert ("summary" in out) == (method == "nir")
    assert "The Aristocats" not in " ".join(out["history"])  # user 1's held-out item (fixture: item 5)


def test_recommend_text_marks_the_held_out_item_after_ranking(fixtures, tmp_cache, fake_llm, capsys):
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset("ml-100k", fixtures)
    split = leave_one_out(ds)
    held = ds.items.title(int(split.targets([1], "test")[0]))
    rc = main(["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--user", "1",
               "--method", "verbalizer", "--protocol", "sampled:3", "--top", "2"])
    cap = capsys.readouterr()
    assert rc == 0
    assert "evaluation protocol" in cap.err  # sampled:N inserts the held-out item: said so
    assert "Top 2 of 4 candidates" in cap.out and "Held-out next item" in cap.out
    history = cap.out.split("Recent history")[1].split("Top 2")[0]
    assert held.split(" (")[0] not in history
    # the default protocol (NIR user filtering) never inserts it: user 1's item is not among its 3 candidates
    rc = main(["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--user", "1",
               "--protocol", "nir-uf:3"])
    assert rc == 0 and "not among the candidates" in capsys.readouterr().out


def test_recommend_errors(fixtures, tmp_cache, fake_llm, capsys):
    assert main(["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--user", "999"]) == 2
    assert "unknown user" in capsys.readouterr().err
    assert main(["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--user", "1",
                 "--protocol", "full"]) == 2
    assert "cannot rank the whole catalogue" in capsys.readouterr().err
    assert main(["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--user", "1",
                 "--method", "magic", "--protocol", "nir-uf:3"]) == 2
    assert "known: listwise, nir, pointwise, verbalizer" in capsys.readouterr().err


def test_recommend_is_a_library_call(fixtures, tmp_cache):
    """The command is a view of `llmrec.pipelines.recommend`: a typed result whose `to_dict()` is the JSON."""
    from llmrec.pipelines import RecommendConfig, recommend

    cfg = RecommendConfig(dataset="ml-100k", user="1", method="nir", protocol="sampled:3", top=2)
    rec = recommend(cfg, str(fixtures), backend=FakeBackend())
    assert list(rec.to_dict()) == ["user", "method", "protocol", "llm", "history", "items", "summary"]
    assert rec.user == 1 and len(rec.items) == 2 and rec.summary
    held = rec.held_out
    assert held.inserted and held.n_candidates == 4 and 1 <= held.rank <= 4  # sampled:N inserts the target
