"""The `llm:RANKER` scorer on a fake backend: every ranker through `evaluate`, the report (with the rule for
never-named candidates), a silent model's golden metrics under both rules, full ranking refused, the target never
in a prompt, no label read by anything (targets permuted → identical prompts and scores), the response cache
answering reruns, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from ranker_fakes import FakeBackend, prompt_text

from llmrec.cli import main
from llmrec.data.candidates import make_candidates
from llmrec.errors import ConfigError, UnknownNameError
from llmrec.evaluation import evaluate
from llmrec.rankers import RANKERS
from llmrec.scorers import ScorerContext, build_scorer
from llmrec.scorers.llm import LLMScorer
from llmrec.types import CandidateSet

REPORT_KEYS = {"parse_rate", "invalid_item_rate", "prompt_tokens", "completion_tokens", "llm_calls", "cache_hits",
               "wall_s_per_user", "prompt_tokens_per_user", "completion_tokens_per_user", "requests", "users",
               "unnamed_rule", "unnamed_share"}


class Spy:
    """Passes a scorer through and keeps every score matrix it returned."""

    def __init__(self, inner):
        self.inner, self.name, self.scores = inner, inner.name, []
        self.batch_size = inner.batch_size

    def fit(self, ds, split):
        self.inner.fit(ds, split)

    def score(self, batch):
        s = self.inner.score(batch)
        self.scores.append(s.clone())
        return s

    def report(self):
        return self.inner.report()


@pytest.fixture()
def tiny_cands(tiny, tmp_cache):
    ds, split = tiny
    return make_candidates(ds, split, "sampled:3", "test", 0)


@pytest.mark.parametrize("name", RANKERS.names())
def test_every_ranker_evaluates_and_reports(name, tiny, tiny_cands):
    ds, split = tiny
    sc = LLMScorer(name, backend=FakeBackend(), options={"batch_users": 4})
    sc.fit(ds, split)
    res = evaluate(sc, ds, split, tiny_cands, progress=False)
    assert res.metrics["HR@10"] == 1.0 and 0 < res.metrics["MRR"] <= 1  # 4 candidates: always in the top 10
    rep = res.scorer_report
    assert REPORT_KEYS <= set(rep) and rep["users"] == len(tiny_cands.users)
    assert rep["llm_calls"] == rep["requests"] and rep["cache_hits"] == 0
    assert 0 <= rep["parse_rate"] <= 1 and 0 <= rep["invalid_item_rate"] <= 1
    assert sc.ranker.cfg.item_kind == "movie" and sc.ranker.cfg.action == "watched"
    # the fakes: listwise names every candidate; nir's step 3 names the last 3 of the 4 shown
    golden = {"listwise": ("bottom", 0.0), "nir": ("bottom", 0.25), "verbalizer": ("n/a", 0.0),
              "pointwise": ("n/a", 0.0), "yesno": ("n/a", 0.0)}
    assert (rep["unnamed_rule"], rep["unnamed_share"]) == golden[name]


@pytest.mark.parametrize("name", ["listwise", "nir"])
def test_a_silent_model_gets_no_free_rank(name, tiny, tiny_cands):
    """A model that names nothing: under the default rule every candidate ties at the bottom and the target
    ranks last (rank C-1 = 3 of 4 candidates: HR@1 = HR@3 = 0, MRR = 1/4); `fill` gives the seeded random ranks
    of the old behaviour, and the report says which rule made the numbers."""
    ds, split = tiny
    out = {}
    for rule in ("bottom", "fill"):
        sc = LLMScorer(name, backend=FakeBackend(lambda p: ""), options={"unnamed": rule, "bootstrap": 2})
        sc.fit(ds, split)
        out[rule] = evaluate(sc, ds, split, tiny_cands, progress=False)
    strict = out["bottom"]
    assert (strict.per_user["rank"] == 3).all()
    assert strict.metrics["HR@1"] == 0 and strict.metrics["MRR"] == pytest.approx(0.25)
    assert strict.scorer_report["unnamed_rule"] == "bottom" and strict.scorer_report["unnamed_share"] == 1.0
    assert out["fill"].scorer_report["unnamed_rule"] == "fill"
    assert out["fill"].metrics["MRR"] > 0.25  # the seeded fill hands out free ranks


def test_registered_and_built_from_a_spec(tiny):
    sc = build_scorer("llm:verbalizer", ScorerContext(seed=3, llm="hf:smollm2-135m", options={"bootstrap": 2}))
    assert isinstance(sc, LLMScorer) and sc.name == "llm:verbalizer" and sc.ranker_options["seed"] == 3
    with pytest.raises(ConfigError, match="needs a ranker"):
        build_scorer("llm", ScorerContext())
    with pytest.raises(UnknownNameError, match="known: listwise, nir, pointwise, verbalizer"):
        build_scorer("llm:gpt", ScorerContext())
    with pytest.raises(ConfigError, match="unknown option 'windw'.*valid options:.*window"):
        build_scorer("llm:verbalizer", ScorerContext(options={"windw": 3}))


def test_full_ranking_is_refused_before_any_model_call(tiny, tmp_cache):
    ds, split = tiny
    fb = FakeBackend()
    sc = LLMScorer("listwise", backend=fb)
    sc.fit(ds, split)
    full = make_candidates(ds, split, "full")
    with pytest.raises(ConfigError, match=r"cannot rank the whole catalogue.*sampled:19.*nir.*candidates:FILE"):
        evaluate(sc, ds, split, full, progress=False)
    assert fb.prompts == []


def test_cli_refuses_full_ranking(fixtures, tmp_cache, capsys):
    rc = main(["evaluate", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--scorer", "llm:verbalizer",
               "--protocol", "full"])
    assert rc == 2
    assert "cannot rank the whole catalogue" in capsys.readouterr().err


def test_data_set_without_titles_is_refused(fixtures, tmp_cache):
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset(str(fixtures / "sequences.txt"))
    with pytest.raises(ConfigError, match="no item titles"):
        LLMScorer("verbalizer", backend=FakeBackend()).fit(ds, leave_one_out(ds))


@pytest.mark.parametrize("name", RANKERS.names())
def test_the_target_is_never_in_a_prompt_unless_it_is_a_candidate(name, tiny, tmp_cache):
    ds, split = tiny
    cands = make_candidates(ds, split, "nir-uf:3", "test", 0)  # the target is not inserted
    fb = FakeBackend()
    sc = LLMScorer(name, backend=fb, options={"batch_users": 1})
    sc.fit(ds, split)
    absent = 0
    for i in range(len(cands.users)):
        n0, n1, n2 = len(fb.prompts), len(fb.label_prompts), len(fb.loglik_calls)
        evaluate(sc, ds, split, cands.subset([i]), progress=False)
        sent = fb.prompts[n0:] + fb.label_prompts[n1:] + [p for p, _ in fb.loglik_calls[n2:]]
        sent_text = "\n".join(prompt_text(p) for p in sent)
        sent_text += "\n".join(t for _, c in fb.loglik_calls[n2:] for t in c)  # pointwise: the scored titles
        target = sc.titles[cands.targets[i]]
        history = [sc.titles[j] for j in split.history_lists(cands.users[i : i + 1], "test")[0]]
        assert target not in history  # the scorer is handed the history before the held-out item
        if cands.targets[i] not in cands.items[i]:
            absent += 1
            assert target not in sent_text and target.split(" (")[0] not in sent_text
        else:
            assert target in sent_text  # legitimately among the candidates
    assert absent >= 2


@pytest.mark.parametrize("name", RANKERS.names())
def test_no_step_reads_the_label(name, tiny, tiny_cands):
    """Targets permuted across users (the candidates unchanged): identical prompts and identical scores."""
    ds, split = tiny
    runs = []
    for targets in (tiny_cands.targets, np.roll(tiny_cands.targets, 1)):
        cs = CandidateSet(tiny_cands.protocol, "test", tiny_cands.users, targets, tiny_cands.items,
                          tiny_cands.split_hash, 0, dict(tiny_cands.meta))
        fb = FakeBackend()
        spy = Spy(LLMScorer(name, backend=fb, options={"bootstrap": 2}))
        spy.fit(ds, split)
        evaluate(spy, ds, split, cs, progress=False)
        runs.append((fb.prompts + fb.label_prompts + fb.loglik_calls, spy.scores))
    (p1, s1), (p2, s2) = runs
    assert p1 == p2 and p1
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(s1, s2))


def test_response_cache_answers_a_rerun(tiny, tiny_cands, tmp_path):
    from llmrec.llm.cache import CachedBackend, ResponseCache

    ds, split = tiny
    out = []
    for _ in range(2):
        fb = FakeBackend()
        spy = Spy(LLMScorer("nir", backend=CachedBackend(fb, ResponseCache(tmp_path / "c.sqlite"))))
        spy.fit(ds, split)
        res = evaluate(spy, ds, split, tiny_cands, progress=False)
        out.append((fb, spy.scores, res.scorer_report))
    (fb1, s1, r1), (fb2, s2, r2) = out
    assert len(fb1.prompts) == 3 * len(tiny_cands.users) and fb2.prompts == []
    assert r2["cache_hits"] == r2["requests"] == r1["requests"] and r2["llm_calls"] == 0
    assert r2["completion_tokens"] == r1["completion_tokens"]  # tokens describe the method, cached or not
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(s1, s2))


def test_padding_columns_and_whole_batches(tiny, tmp_cache):
    import torch

    from llmrec.types import ScoreBatch

    ds, split = tiny
    fb = FakeBackend()
    sc = LLMScorer("listwise", backend=fb)
    sc.fit(ds, split)
    users = np.array([1, 2, 3])
    cand = torch.tensor([[5, 6, 0, 0], [7, 8, 9, 3], [2, 0, 0, 0]])
    s = sc.score(ScoreBatch(torch.from_numpy(users), torch.from_numpy(split.history(users, "test")), cand))
    assert s.shape == (3, 4) and torch.isfinite(s).all()
    assert (s[cand == 0] == -1e9).all() and (s[cand > 0] > 0).all()
    assert fb.generate_calls == [3]  # the whole batch in one backend call
