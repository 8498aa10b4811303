"""Every ranker on a fake backend: aligned scores, determinism under a seed, batch independence, one backend
call per batch, never-named candidates (tied at the bottom by default, a seeded order under unnamed=fill),
bootstrapping without a random tie-break, echoed history titles, verbalizer windows, pointwise prefix reuse, NIR's
chained steps and reusable summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ranker_fakes import FakeBackend, default_reply, last_user, prompt_text

from llmrec.errors import ConfigError, UnknownNameError
from llmrec.evaluation.metrics import pessimistic_ranks
from llmrec.llm.base import Completion
from llmrec.rankers import RANKERS, UserContext, make_ranker
from llmrec.rankers.base import candidate_orders, positional_scores, user_rng
from llmrec.rankers.verbalizer import windows

HIST = ("Star Wars", "The Terminator", "Alien", "Back to the Future", "Die Hard", "Jurassic Park")
CANDS = ["GoldenEye", "Babe", "Heat", "Casablanca", "The Rock", "Fargo", "Clerks"]
USERS = [UserContext(1, HIST), UserContext(2, HIST[:3]), UserContext(7, HIST[2:])]
BATCH = [CANDS, CANDS[::-1], CANDS[2:] + CANDS[:2]]


@pytest.mark.parametrize("name", RANKERS.names())
def test_every_ranker_scores_aligned_deterministic_and_batch_independent(name):
    a = make_ranker(name, FakeBackend(), {"bootstrap": 2})
    res = a.rank(USERS, BATCH)
    assert len(res) == len(USERS)
    for r, c in zip(res, BATCH):
        assert r.scores.shape == (len(c),) and np.isfinite(r.scores).all()
        assert r.stats.requests >= 1 and r.prompts
    again = make_ranker(name, FakeBackend(), {"bootstrap": 2}).rank(USERS, BATCH)
    assert all(np.array_equal(x.scores, y.scores) for x, y in zip(res, again))
    alone = [make_ranker(name, FakeBackend(), {"bootstrap": 2}).rank([u], [c])[0] for u, c in zip(USERS, BATCH)]
    assert all(np.array_equal(x.scores, y.scores) for x, y in zip(res, alone))


@pytest.mark.parametrize("name", RANKERS.names())
def test_history_is_cut_to_the_last_titles(name):
    b = FakeBackend()
    r = make_ranker(name, b, {"history_len": 2}).rank([UserContext(1, HIST)], [CANDS])[0]
    text = "\n".join(prompt_text(p) for p in r.prompts)
    assert "Jurassic Park" in text and "Die Hard" in text and "Star Wars" not in text


def test_unknown_ranker_and_bad_options():
    with pytest.raises(UnknownNameError, match="known: listwise, nir, pointwise, verbalizer"):
        make_ranker("chatty", FakeBackend())
    with pytest.raises(ConfigError, match="valid keys"):
        make_ranker("verbalizer", FakeBackend(), {"windw": 5})
    with pytest.raises(ConfigError, match="window"):
        make_ranker("verbalizer", FakeBackend(), {"window": 27})
    with pytest.raises(ConfigError, match="bootstrap"):
        make_ranker("listwise", FakeBackend(), {"bootstrap": 0})


def test_one_backend_call_per_batch():
    b = FakeBackend()
    make_ranker("listwise", b, {"bootstrap": 3}).rank(USERS, BATCH)
    assert b.generate_calls == [len(USERS) * 3]
    b = FakeBackend()
    make_ranker("nir", b).rank(USERS, BATCH)
    assert b.generate_calls == [len(USERS)] * 3  # one call per step
    b = FakeBackend()
    make_ranker("verbalizer", b, {"bootstrap": 2}).rank(USERS, BATCH)
    assert b.label_calls == [len(USERS) * 2]


def test_never_named_candidates_tie_at_the_bottom_by_default():
    def reply(p):
        return "1. The Rock\n2. Heat\n3. Titanic"  # Titanic is not a candidate

    r = make_ranker("listwise", FakeBackend(reply)).rank([USERS[0]], [CANDS])[0]
    # C = 7: The Rock 7, Heat 6; the five never named all 0
    assert r.scores.tolist() == [0, 0, 6, 0, 7, 0, 0]
    assert r.stats.parsed == 1 and r.stats.named == 3 and r.stats.invalid == 1
    assert r.stats.candidates == 7 and r.stats.unnamed == 5
    # a never-named target ranks below every other unnamed candidate (pessimistic ties): rank C - 1
    target = torch.tensor([CANDS.index("Fargo")])
    assert pessimistic_ranks(torch.from_numpy(r.scores)[None], target).item() == 6

    silent = make_ranker("listwise", FakeBackend(lambda p: "")).rank([USERS[0]], [CANDS])[0]
    assert silent.scores.tolist() == [0.0] * 7 and silent.stats.parsed == 0 and silent.stats.unnamed == 7


def test_unnamed_fill_keeps_the_seeded_order_and_the_same_prompts():
    def reply(p):
        return "1. The Rock\n2. Heat\n3. Titanic"

    bf, bb = FakeBackend(reply), FakeBackend(reply)
    r = make_ranker("listwise", bf, {"unnamed": "fill"}).rank([USERS[0]], [CANDS])[0]
    make_ranker("listwise", bb).rank([USERS[0]], [CANDS])
    assert bf.prompts == bb.prompts  # the rule changes the scores only: the same prompts (and cached answers)
    order = [CANDS[i] for i in np.argsort(-r.scores)]
    assert order[:2] == ["The Rock", "Heat"]
    assert len(set(r.scores)) == len(CANDS)  # no ties

    silent = lambda seed, key: make_ranker(  # noqa: E731
        "listwise", FakeBackend(lambda p: ""), {"seed": seed, "unnamed": "fill"}
    ).rank([UserContext(key, HIST)], [CANDS])[0]
    a, b = silent(0, 1), silent(0, 1)
    assert np.array_equal(a.scores, b.scores) and sorted(a.scores) == list(range(1, len(CANDS) + 1))
    assert a.stats.parsed == 0
    orders = {tuple(np.argsort(silent(s, 1).scores)) for s in range(6)}
    assert len(orders) > 1  # the order comes from the seed, not from the candidates' positions
    with pytest.raises(ConfigError, match=r"unnamed.*bottom.*fill.*random"):
        make_ranker("nir", FakeBackend(), {"unnamed": "random"})
    with pytest.raises(ConfigError, match="valid keys"):  # verbalizer scores every candidate: no such option
        make_ranker("verbalizer", FakeBackend(), {"unnamed": "bottom"})


@pytest.mark.parametrize("name", ["listwise", "nir"])
def test_bootstrap_average_keeps_ties_no_random_tiebreak(name):
    """K = 3 orders; the model names only the first candidate it is shown (listwise) or the last three (nir's
    fake): the means are exact, and candidates never named in any order stay tied at 0."""

    def first_shown(p):
        user = last_user(p)
        if "choose next:\n" not in user:
            return default_reply(p)
        return user.split("choose next:\n")[1].split("\n\n")[0].splitlines()[0]

    ranker = make_ranker(name, FakeBackend(first_shown), {"bootstrap": 3})
    r = ranker.rank([USERS[0]], [CANDS])[0]
    rng = user_rng(0, USERS[0].key)
    orders = candidate_orders(rng, len(CANDS), 3)
    n = len(CANDS)
    expect = np.zeros(n)
    for o in orders:
        named = [o[0]] if name == "listwise" else [o[-1], o[-2], o[-3]]
        expect += positional_scores(named, n)
    expect /= 3
    assert np.array_equal(r.scores, expect)  # no jitter
    never = expect == 0
    assert never.any() and r.stats.unnamed == int(never.sum())
    assert (r.scores[never] == 0).all()
    fill = make_ranker(name, FakeBackend(first_shown), {"bootstrap": 3, "unnamed": "fill"})
    fill = fill.rank([USERS[0]], [CANDS])[0]
    assert len(set(fill.scores)) == n  # fill: the seeded jitter still breaks every tie


def test_echoed_history_titles_are_invalid_in_rankers():
    user = UserContext(3, ("Star Wars: Return of the Jedi (1983)", "Die Hard (1988)"))
    cands = ["Star Wars (1977)", "Heat (1995)", "Fargo (1996)"]
    r = make_ranker("listwise", FakeBackend(lambda p: "1. Star Wars: Return of the Jedi (1983)\n2. Heat")).rank(
        [user], [cands])[0]
    assert r.scores.tolist() == [0, 3, 0] and r.stats.invalid == 1

    def nir_reply(p):
        return "1. Star Wars: Return of the Jedi - Fargo\n2. Die Hard - Star Wars: Return of the Jedi" \
            if "Step 3" in last_user(p) else "ok"

    n = make_ranker("nir", FakeBackend(nir_reply)).rank([user], [cands])[0]
    assert n.scores.tolist() == [0, 0, 3] and n.stats.invalid == 1 and n.stats.unnamed == 2


def test_bootstrap_orders_and_rank_average():
    rng = user_rng(0, 5)
    orders = candidate_orders(rng, 7, 3)
    assert np.array_equal(orders[0], np.arange(7)) and all(sorted(o) == list(range(7)) for o in orders)
    assert np.array_equal(positional_scores([2, 0, 2], 4, np.array([3, 1, 0, 2])), [3, 1, 4, 2])

    shown = []

    def first_shown(p):  # a fully position-biased model: always names the first candidate it is shown
        cands = last_user(p).split("choose next:\n")[1].split("\n\n")[0].splitlines()
        shown.append(cands)
        return cands[0]

    r = make_ranker("listwise", FakeBackend(first_shown), {"bootstrap": 3}).rank([USERS[0]], [CANDS])[0]
    assert len(shown) == 3 and shown[0][0] == "1. GoldenEye"  # the given order first
    assert len({tuple(s) for s in shown}) == 3
    assert r.stats.requests == 3 and len(r.prompts) == 3


def test_verbalizer_windows_and_merge():
    assert [len(w) for w in windows(30, 20)] == [15, 15]
    assert [len(w) for w in windows(20, 20)] == [20]
    assert [len(w) for w in windows(41, 20)] == [14, 13, 14]
    assert windows(0, 20) == []
    many = [f"Movie {i}" for i in range(30)]
    # the model likes "Movie 17" (in the second window) and is indifferent otherwise
    lp = lambda p, lab, i: 0.0 if f"{lab}. Movie 17" in last_user(p) else -3.0  # noqa: E731
    b = FakeBackend(label_logprob=lp)
    r = make_ranker("verbalizer", b, {"window": 20}).rank([USERS[0]], [many])[0]
    assert b.label_calls == [2] and len(r.prompts) == 2
    assert int(np.argmax(r.scores)) == 17
    first = last_user(b.label_prompts[0])
    assert "A. Movie 0" in first and "O. Movie 14" in first and "P. " not in first


def test_pointwise_prefix_is_shared_and_bootstrap_costs_nothing():
    b = FakeBackend()
    one = make_ranker("pointwise", b).rank(USERS, BATCH)
    assert len(b.loglik_calls) == len(USERS)
    prefix, conts = b.loglik_calls[0]
    assert conts == sorted(CANDS) and "GoldenEye" not in prompt_text(prefix)
    assert b.loglik_calls[1][1] == sorted(CANDS)  # another order of the same candidates: the same request
    b3 = FakeBackend()
    three = make_ranker("pointwise", b3, {"bootstrap": 3}).rank(USERS, BATCH)
    assert len(b3.loglik_calls) == len(USERS)  # the candidate order cannot change the prefix: computed once
    assert all(np.array_equal(x.scores, y.scores) for x, y in zip(one, three))
    s = make_ranker("pointwise", FakeBackend(), {"norm": "sum"}).rank(USERS[:1], BATCH[:1])[0]
    assert not np.allclose(s.scores, one[0].scores)
    bp = FakeBackend()
    make_ranker("pointwise", bp, {"norm": "pmi"}).rank(USERS[:1], BATCH[:1])
    assert len(bp.loglik_calls) == 2 and "Star Wars" not in prompt_text(bp.loglik_calls[1][0])


def test_nir_steps_chain_and_summaries_are_reusable():
    b = FakeBackend()
    ranker = make_ranker("nir", b)
    res = ranker.rank(USERS[:2], BATCH[:2])
    steps = [prompt_text(p) for p in b.prompts]
    assert len(steps) == 6
    assert "Step 1" in steps[0] and "Step 2" not in steps[0]
    assert "I like action movies." in steps[2] and "Step 2" in steps[2]  # step 2 carries step 1's answer
    assert "1. A watched movie" in steps[4] and "Step 3" in steps[4]
    r = res[0]
    assert r.extras == {"summary": "I like action movies.", "selected": "1. A watched movie"}
    assert ranker.summaries[1] == "I like action movies."
    # the fake names the last 3 candidates shown, last first
    top = [BATCH[0][i] for i in np.argsort(-r.scores)[:3]]
    assert top == ["Clerks", "Fargo", "The Rock"]
    b2 = FakeBackend()
    assert make_ranker("nir", b2).summarise(USERS[:2], BATCH[:2]) == ["I like action movies."] * 2
    assert b2.generate_calls == [2]


def test_generation_stats_count_cached_answers():
    class Cached(FakeBackend):
        def generate(self, prompts, params=None, on_result=None):
            out = super().generate(prompts, params, on_result)
            return [Completion(c.text, c.prompt_tokens, c.completion_tokens, 0.0, cached=True) for c in out]

    r = make_ranker("listwise", Cached()).rank(USERS[:1], BATCH[:1])[0]
    assert r.stats.cached == 1 and r.stats.prompt_tokens > 0 and r.stats.completion_tokens > 0


# ---- template options (verbalizer / pointwise / yesno): held-out templates after LLM tuning -----------------
def test_rankers_take_any_template_of_the_right_shape_and_refuse_others():
    from llmrec.errors import ConfigError
    from llmrec.rankers import make_ranker

    fake = FakeBackend()
    assert make_ranker("verbalizer", fake, {"template": "p5/direct/choose-letter"}).cfg.template == "p5/direct/choose-letter"
    assert make_ranker("pointwise", fake, {"template": "p5/sequential/wonder-next"}).cfg.template
    assert make_ranker("yesno", fake, {"template": "p5/yesno/would-enjoy"}).cfg.template
    with pytest.raises(ConfigError, match="expects a 'item' answer"):
        make_ranker("verbalizer", fake, {"template": "p5/direct/choose-one"})
    with pytest.raises(ConfigError, match="lacks the variable"):
        make_ranker("yesno", fake, {"template": "rank/next_title"})
    with pytest.raises(ConfigError, match="no-such"):
        make_ranker("pointwise", fake, {"template": "rank/no-such"})


def test_verbalizer_renders_the_chosen_template():
    from llmrec.rankers import make_ranker

    fake = FakeBackend()
    r = make_ranker("verbalizer", fake, {"template": "p5/direct/choose-letter", "item_kind": "movie"})
    res = r.rank([UserContext(1, ("Heat (1995)", "Alien (1979)"))], [["Babe (1995)", "Casablanca (1942)"]])[0]
    text = prompt_text(res.prompts[0])
    assert "Reply with the letter of the best choice." in text and "A. Babe (1995)" in text
    assert "Heat (1995), Alien (1979)" in text  # the held-out template lists the history with commas


def test_yesno_scores_are_the_log_odds_of_yes_one_prompt_per_candidate():
    from llmrec.llm.base import LabelScores
    from llmrec.rankers import make_ranker

    class YesNoBackend(FakeBackend):
        def score_labels(self, prompts, labels, on_result=None):
            assert list(labels) == ["Yes", "No"]
            self.seen = list(prompts)
            out = []
            for p in prompts:  # "Babe" is liked: p(Yes) = 0.8; anything else 0.3; p(No) = 0.1
                yes = 0.8 if "Babe" in prompt_text(p) else 0.3
                out.append(LabelScores(list(labels), [math.log(yes), math.log(0.1)], 10, 0.0))
            return out

    b = YesNoBackend()
    r = make_ranker("yesno", b, {"bootstrap": 3})
    res = r.rank([UserContext(1, ("Heat (1995)",))], [["Casablanca (1942)", "Babe (1995)"]])[0]
    assert len(b.seen) == 2  # one prompt per candidate; bootstrap adds nothing (order cannot matter)
    assert res.scores.tolist() == pytest.approx([math.log(3.0), math.log(8.0)])
