"""Every registry, every name: a registered extension is one file + one registration + one row in a test matrix.

This file holds the rows of the scorer and data-set registries; models, objectives, rankers and LLM backends are
parametrised over their registries in tests/models, tests/objectives, tests/rankers and tests/llm. A registry
added anywhere must be named in `COVERED` (with the test that walks its names), and a name added to the scorer
or data-set registry without a row here fails `test_*_have_a_row`.
"""

from __future__ import annotations

import gc
import importlib.util
import shutil
from pathlib import Path

import pytest

from llmrec.data import DATASETS, leave_one_out, load_dataset
from llmrec.data.candidates import make_candidates
from llmrec.evaluation import evaluate
from llmrec.registry import Registry
from llmrec.scorers import SCORERS, ScorerContext, build_scorer
from llmrec.types import Domain

TESTS = Path(__file__).parent

COVERED = {  # registry kind -> the test that walks every one of its names
    "scorer": "tests/test_registries.py::test_every_scorer_fits_and_scores",
    "data set": "tests/test_registries.py::test_every_data_set_loads",
    "model": "tests/models/test_models.py::test_contract_and_shapes",
    "objective": "tests/objectives/test_objectives.py (COMBOS: every objective x every model it fits)",
    "ranker": "tests/rankers/test_rankers.py, tests/rankers/test_llm_scorer.py",
    "LLM backend prefix": "tests/llm/test_llm_factory.py",
}


def test_every_registry_has_a_test_matrix():
    import llmrec.llm
    import llmrec.models
    import llmrec.objectives
    import llmrec.rankers  # noqa: F401

    kinds = {obj.kind for obj in gc.get_objects() if type(obj) is Registry}
    assert kinds <= set(COVERED), f"registries without a test matrix: {sorted(kinds - set(COVERED))}"


# ------------------------------------------------------------------------------------------------- scorers
SCORER_ROWS = {  # name -> (spec, options) that builds, fits and scores offline on the tiny fixture
    "random": ("random", {}),
    "pop": ("pop", {}),
    "itemknn": ("itemknn", {}),
    "bpr": ("bpr", {"epochs": 2}),
    "run": ("run:{run}", {}),
    "text": ("text:minilm", {"cache": False}),
    "llm": ("llm:verbalizer", {"cache": "false"}),
    "hybrid": ("hybrid:{hybrid}", {}),
}


def test_every_scorer_has_a_row():
    assert set(SCORERS.names()) == set(SCORER_ROWS)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, fixtures) -> Path:
    """A SASRec trained for one epoch on the tiny MovieLens fixture (a `run:` folder)."""
    from llmrec.training import ObjectiveSpec, StageConfig, TrainConfig, train

    out = tmp_path_factory.mktemp("run") / "sasrec"
    cfg = TrainConfig(dataset="ml-100k", threads=1, model_options={"max_len": 8, "hidden": 8, "n_heads": 1},
                      stages=[StageConfig([ObjectiveSpec("next_item")], epochs=1, batch_size=4)], test=False)
    train(cfg, out, data_dir=str(fixtures), progress=False)
    return out


@pytest.fixture()
def fake_llm(monkeypatch):
    """`llmrec.llm.make_backend` answering from the rankers' deterministic fake backend."""
    spec = importlib.util.spec_from_file_location("ranker_fakes", TESTS / "rankers" / "ranker_fakes.py")
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    monkeypatch.setattr("llmrec.llm.make_backend", lambda spec=None, **kw: fakes.FakeBackend())


@pytest.mark.parametrize("name", SCORERS.names())
def test_every_scorer_fits_and_scores(name, tiny, tiny_run, tmp_path, tmp_cache, fake_llm):
    ds, split = tiny
    hybrid = tmp_path / "hybrid.yaml"
    hybrid.write_text("components:\n  - {name: pop, scorer: pop}\n  - {name: knn, scorer: itemknn}\nfusion: rrf\n")
    spec, options = SCORER_ROWS[name]
    scorer = build_scorer(spec.format(run=tiny_run, hybrid=hybrid), ScorerContext(seed=0, options=dict(options)))
    assert SCORERS.help(name)
    scorer.fit(ds, split)
    cands = make_candidates(ds, split, "sampled:3", "test", 0)
    res = evaluate(scorer, ds, split, cands, ks=(1, 10), progress=False)
    assert len(res.per_user) == len(cands.users)
    assert 0 <= res.metrics["HR@1"] <= res.metrics["HR@10"] == 1.0  # 4 candidates: always in the top 10


# ----------------------------------------------------------------------------------------------- data sets
DATASET_ROWS = {  # name -> (fixture folder to copy into a data root, renamed files, prompt words)
    "ml-100k": ("ml-100k", {}, Domain("movie", "watched")),
    "nir-ml-100k": ("nir-ml-100k", {}, Domain("movie", "watched")),
    "beauty": ("amazon-s3rec", {}, Domain()),
    "sports": ("amazon-s3rec", {"Beauty": "Sports_and_Outdoors"}, Domain()),
    "toys": ("amazon-s3rec", {"Beauty": "Toys_and_Games"}, Domain()),
}


def test_every_data_set_has_a_row():
    assert set(DATASETS.names()) == set(DATASET_ROWS)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_data_set_loads(name, fixtures, tmp_path):
    """Each registered loader reads the fixture in its format (the Amazon ones under their own file names) and
    carries its spec's prompt words."""
    folder, rename, domain = DATASET_ROWS[name]
    root = tmp_path / "data"
    shutil.copytree(fixtures / folder, root / folder)
    for path in sorted((root / folder).rglob("*")):
        for old, new in rename.items():
            if old in path.name:
                path.rename(path.with_name(path.name.replace(old, new)))
    spec = DATASETS.get(name)
    assert spec.description and spec.citation and spec.terms
    ds = load_dataset(name, root)
    split = leave_one_out(ds)
    assert ds.n_users > 0 and ds.n_items > 0 and len(split.eval_users("test")) > 0
    assert ds.domain == domain == spec.domain


def test_a_path_gets_generic_prompt_words(fixtures, tmp_path):
    """Domain words come from a registered data set's spec, never from a name: a folder named like a
    MovieLens set is still a folder of generic items."""
    shutil.copytree(fixtures / "csv_folder", tmp_path / "ml-1m")
    assert load_dataset(tmp_path / "ml-1m").domain == Domain("item", "interacted with")
