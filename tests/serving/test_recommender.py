"""`llmrec.pipelines.Recommender` and `llmrec recommend --scorer`: any scorer, the history masked, cold users by
raw item ids, one scorer call per batch with the same answers as one by one, hybrid components."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llmrec.cli import main
from llmrec.pipelines import QueryError, Recommender, RecommenderConfig
from llmrec.pipelines.recommend import _top_columns, parse_item_ids

N_ITEMS = 10  # the fixture's catalogue


def spec_of(name: str, request) -> str:
    if name == "run":
        return f"run:{request.getfixturevalue('sasrec_run')}"
    if name == "hybrid":
        return f"hybrid:{request.getfixturevalue('hybrid_yaml')}"
    return name


def load(fixtures, spec: str, **kw) -> Recommender:
    return Recommender.load(RecommenderConfig(dataset="ml-100k", scorer=spec, **kw), str(fixtures))


# every registered scorer family that ranks a catalogue, plus an LLM ranker over retrieved candidates
SCORERS = ["pop", "random", "itemknn", "bpr", "hybrid", "run", "llm:verbalizer", "llm:listwise"]


@pytest.mark.parametrize("name", SCORERS)
def test_any_scorer_recommends_outside_the_history(name, fixtures, tmp_cache, fake_llm, request):
    rec = load(fixtures, spec_of(name, request))
    for user in rec.user_ids[1:]:
        out = rec.recommend(rec.query_user(user, 3))
        seen = {i for i, _ in out.history}
        q = rec.query_user(user, 3)
        assert out.user == user and seen == {rec.item_ids[i] for i in q.history.tolist()}  # the whole sequence
        assert len(q.history) == len(rec.split.sequence(q.internal_user))
        ids = [it.item_id for it in out.items]
        assert not seen & set(ids), "a history item was recommended"
        assert len(ids) == len(set(ids)) == min(3, out.n_ranked)
        scores = [it.score for it in out.items]
        assert scores == sorted(scores, reverse=True)
        unseen = N_ITEMS - len({i for i, _ in out.history})
        assert out.n_ranked == (min(20, unseen) if name.startswith("llm:") else unseen)
        assert all(it.title and not it.title.startswith("item ") for it in out.items)


def test_the_top_k_is_the_scorers_order_with_ties_by_item_id(fixtures, tmp_cache):
    from llmrec.types import ScoreBatch

    rec = load(fixtures, "itemknn")
    q = rec.query_user(1, N_ITEMS)
    full = rec.scorer.score(ScoreBatch(torch.tensor([1]), torch.from_numpy(q.history[None]), None))[0].numpy()
    unseen = [i for i in range(1, N_ITEMS + 1) if i not in set(q.history.tolist())]
    expected = sorted(unseen, key=lambda i: (-full[i], i))  # item ids are their raw ids in this fixture
    out = rec.recommend(q)
    assert [it.item_id for it in out.items] == expected
    assert [it.score for it in out.items] == [round(float(full[i]), 6) for i in expected]


def test_a_cold_user_by_raw_item_ids_gets_what_the_same_history_gets(fixtures, tmp_cache):
    rec = load(fixtures, "itemknn")
    known = rec.recommend(rec.query_user("2", 4))
    raw = [i for i, _ in known.history]
    for history in (raw, [str(i) for i in raw], ", ".join(map(str, raw))):
        cold = rec.recommend(rec.query_history(history, 4))
        assert cold.user is None
        assert [it.to_dict() for it in cold.items] == [it.to_dict() for it in known.items]


@pytest.mark.parametrize("name", ["pop", "itemknn", "hybrid", "run", "llm:verbalizer"])
def test_one_scorer_call_per_batch_with_the_answers_of_one_by_one(name, fixtures, tmp_cache, fake_llm, request):
    rec = load(fixtures, spec_of(name, request))
    queries = [rec.query_user(u, k) for u, k in zip(rec.user_ids[1:], [1, 3, 10, 2, 5, 4])]
    queries += [rec.query_history([3], 3), rec.query_history([1, 2, 3, 4, 5, 6, 7], 10)]
    batched = rec.recommend_many(queries)
    assert rec.calls == 1 and rec.queries == len(queries)
    for q, b in zip(queries, batched):
        alone = rec.recommend(q)
        assert [it.item_id for it in alone.items] == [it.item_id for it in b.items]
        np.testing.assert_allclose([it.score for it in alone.items], [it.score for it in b.items], atol=1e-5)
    assert rec.calls == 1 + len(queries)


def test_hybrid_items_carry_each_components_score(fixtures, tmp_cache, hybrid_yaml):
    from llmrec.types import ScoreBatch

    rec = load(fixtures, f"hybrid:{hybrid_yaml}")
    q = rec.query_user(3, 5)
    out = rec.recommend(q)
    batch = ScoreBatch(torch.tensor([q.internal_user]), torch.from_numpy(q.history[None]), None)
    for name, comp in rec.scorer.components.items():
        full = comp.score(batch)[0]
        assert [it.components[name] for it in out.items] == [round(float(full[it.item_id]), 6) for it in out.items]
    assert list(out.items[0].components) == ["pop", "itemknn"]
    assert "components" in out.to_dict()["items"][0] and "components" not in out.to_dict(components=False)["items"][0]


def test_a_two_stage_hybrid_shows_the_rerankers_scores_on_its_top_n(fixtures, tmp_cache, fake_llm, tmp_path):
    cfg = tmp_path / "two_stage.yaml"
    cfg.write_text("components:\n  - {name: pop, scorer: pop}\n  - {name: itemknn, scorer: itemknn}\n"
                   "fusion: weighted\nrerank: {scorer: 'llm:verbalizer', top_n: 2}\n")
    rec = load(fixtures, f"hybrid:{cfg}")
    out = rec.recommend(rec.query_user(1, 4))
    reranked = [it for it in out.items if "llm:verbalizer" in it.components]
    assert len(reranked) == 2 and out.items[:2] == reranked  # the re-ranked top 2 lead, the rest keep stage one
    assert all(set(it.components) == {"pop", "itemknn"} for it in out.items[2:])


def test_refused_queries_name_their_field(fixtures, tmp_cache):
    rec = load(fixtures, "itemknn", max_k=5)
    cases = [
        (lambda: rec.query_user("999"), "user", "unknown user '999'"),
        (lambda: rec.query_history([1, 99, "x", 99]), "history", "unknown item ids in the history: 99, x ("),
        (lambda: rec.query_history("  # nothing\n"), "history", "the history is empty"),
        (lambda: rec.query_user(1, 0), "k", "k must be from 1 to 5, got 0"),
        (lambda: rec.query_user(1, 6), "k", "got 6"),
        (lambda: rec.query_user(1, "two"), "k", "whole number"),
    ]
    for call, field, text in cases:
        with pytest.raises(QueryError, match=None) as e:
            call()
        assert e.value.field == field and text in str(e.value), str(e.value)
    bpr = load(fixtures, "bpr")
    with pytest.raises(QueryError, match="learned user embedding") as e:
        bpr.query_history([1, 2])
    assert e.value.field == "history"
    assert bpr.recommend(bpr.query_user(1, 2)).items  # a known user is fine


def test_parse_item_ids():
    assert parse_item_ids("1, 2 3\n4;5  # a comment, 6\n\n7") == ["1", "2", "3", "4", "5", "7"]
    assert parse_item_ids("") == []


def test_top_columns_equals_a_stable_sort_with_ties():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        scores = torch.randint(0, 4, (5, 40), generator=g).to(torch.float64)  # many ties
        scores[0] = torch.randn(40, generator=g, dtype=torch.float64)  # one row without
        for k in (1, 3, 10, 40):
            expect = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
            assert torch.equal(_top_columns(scores, k), expect)
    masked = torch.tensor([[1.0, -torch.inf, 2.0, -torch.inf, 1.0], [-torch.inf] * 5], dtype=torch.float64)
    assert _top_columns(masked, 4).tolist() == [[2, 0, 4, 1], [0, 1, 2, 3]]  # -inf ties too: by column
    distinct = torch.randn(3, 1000, generator=g, dtype=torch.float64)
    assert torch.equal(_top_columns(distinct, 7), torch.sort(distinct, dim=1, descending=True, stable=True).indices[:, :7])


# --- the command -------------------------------------------------------------------------------------------

def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_recommend_scorer_json(fixtures, tmp_cache, hybrid_yaml, tmp_path, capsys):
    base = ["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures)]
    code, out, _ = run_cli(base + ["--scorer", "itemknn", "--user", "1", "--k", "3", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and list(doc) == ["user", "items"] and doc["user"] == 1 and len(doc["items"]) == 3
    assert all(list(it) == ["item_id", "title", "score"] for it in doc["items"])
    code, out, _ = run_cli(base + ["--scorer", "itemknn", "--history", "1,3", "--json"], capsys)
    cold = json.loads(out)
    assert code == 0 and cold["user"] is None and {1, 3}.isdisjoint(it["item_id"] for it in cold["items"])
    f = tmp_path / "history.txt"
    f.write_text("# oldest first\n1\n3\n")
    code, out, _ = run_cli(base + ["--scorer", "itemknn", "--history-file", str(f), "--json"], capsys)
    assert code == 0 and json.loads(out) == cold
    code, out, _ = run_cli(base + ["--scorer", f"hybrid:{hybrid_yaml}", "--user", "1", "--json", "--explain"], capsys)
    assert code == 0 and all(set(it["components"]) == {"pop", "itemknn"} for it in json.loads(out)["items"])


def test_recommend_scorer_text_and_explain(fixtures, tmp_cache, hybrid_yaml, capsys):
    base = ["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--user", "1", "--k", "2"]
    code, out, _ = run_cli(base + ["--scorer", f"hybrid:{hybrid_yaml}", "--explain"], capsys)
    assert code == 0 and "Top 2 of 4 items ranked" in out
    header = next(line for line in out.splitlines() if "title" in line and "score" in line)
    assert header.split()[:3] == ["score", "pop", "itemknn"]
    code, out, err = run_cli(base + ["--scorer", "pop", "--explain"], capsys)
    assert code == 0 and "not a hybrid" in err


@pytest.mark.parametrize("extra, message", [
    (["--scorer", "itemknn", "--history", "1,77,zz"], "unknown item ids in the history: 77, zz"),
    (["--scorer", "itemknn", "--user", "999"], "unknown user '999'"),
    (["--scorer", "itemknn"], "needs --user U, --history ID,ID,… or --history-file F"),
    (["--scorer", "itemknn", "--history-file", "/nonexistent/h.txt"], "--history-file /nonexistent/h.txt: cannot read"),
    (["--scorer", "itemknn", "--user", "1", "--protocol", "nir"], "--protocol cannot be used in the --scorer form"),
    (["--history", "1,2"], "--history cannot be used in the --method form"),
    (["--scorer", "itemknn", "--user", "1", "--history", "1"], "not allowed with argument"),
])
def test_recommend_scorer_errors_are_one_line(extra, message, fixtures, tmp_cache, capsys):
    code, _, err = run_cli(["recommend", "--dataset", "ml-100k", "--data-dir", str(fixtures), *extra], capsys)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
