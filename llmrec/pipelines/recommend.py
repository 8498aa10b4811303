"""`recommend(cfg)`: the whole of `llmrec recommend` as a function — one user's candidates ranked by an LLM ranker.

What the ranker sees. History: the user's sequence as of the test phase — everything except the held-out last
item, exactly what `run_evaluation` hands a scorer. Candidates: the user's row of a candidate protocol (default
`nir-uf:19`, which never inserts the held-out item). The ranker never sees which candidate is held out; the
result says where it landed (`Recommendation.held_out`), for a view that shows it after ranking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmrec.data.canonical import DataConfig
from llmrec.errors import ConfigError, DataError

if TYPE_CHECKING:
    from llmrec.llm.base import LLMBackend

DEFAULT_PROTOCOL = "nir-uf:19"


@dataclass
class RecommendConfig:
    """One recommendation: whose, with which ranker, over which candidates."""

    dataset: str = ""
    user: str = ""  # the raw user id, as in the data files
    method: str = "verbalizer"  # a registered ranker: nir | listwise | verbalizer | pointwise | …
    llm: str | None = None  # LLM backend spec (default hf:smollm2-135m)
    protocol: str = DEFAULT_PROTOCOL  # where the candidates come from (see the module doc)
    top: int = 10
    recent: int = 10  # history titles to show
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # ranker / llm-scorer options, as for evaluate
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ValueError(f"top must be >= 1, got {self.top}")
        if self.protocol == "full":
            raise ValueError("protocol full: an LLM cannot rank the whole catalogue; use nir-uf:19 or sampled:N")


@dataclass
class HeldOut:
    """The user's held-out next item, for showing after ranking: its title, its 1-based pessimistic rank among
    the candidates (None when not a candidate), and whether the protocol inserted it."""

    title: str
    rank: int | None
    n_candidates: int
    inserted: bool


@dataclass
class Recommendation:
    """What `recommend` returns; `to_dict()` is the command's JSON (the held-out item stays out of it)."""

    user: Any  # the raw user id
    method: str
    protocol: str
    llm: str  # the backend's name
    history: list[str]  # the most recent `cfg.recent` titles, oldest first
    items: list[dict[str, Any]]  # the top `cfg.top`: {"item_id", "title", "score"}, best first
    held_out: HeldOut
    summary: str | None = None  # NIR's step-1 preference summary, for the nir method

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user, "method": self.method, "protocol": self.protocol,
                               "llm": self.llm, "history": self.history, "items": self.items}
        if self.summary is not None:
            out["summary"] = self.summary
        return out


def recommend(cfg: RecommendConfig, data_dir: str | None = None, backend: LLMBackend | None = None) -> Recommendation:
    """Rank `cfg.user`'s candidates under `cfg.protocol` with ranker `cfg.method`; see the module doc."""
    import numpy as np
    import torch

    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates
    from llmrec.scorers.llm import LLMScorer
    from llmrec.types import ScoreBatch

    if not cfg.dataset or not cfg.user:
        raise ConfigError("recommend needs --dataset and --user")
    scorer = LLMScorer(cfg.method, llm=cfg.llm, options=dict(cfg.options), seed=cfg.seed, backend=backend)
    ds = load_dataset(cfg.dataset, data_dir, cfg.data)
    split = leave_one_out(ds)
    u = ds.internal_user(cfg.user)
    cands = make_candidates(ds, split, cfg.protocol, "test", cfg.seed, data_dir=data_dir)
    row = np.nonzero(cands.users == u)[0]
    if not len(row):
        raise DataError(
            f"user {cfg.user!r} has no candidates under protocol {cfg.protocol!r} "
            f"({'not among its users' if cfg.protocol != 'nir' else 'not one of the 170 published NIR users'})"
        )
    items = cands.items[row[0]]  # (C,)
    items = items[items > 0]
    if not len(items):
        raise DataError(f"user {cfg.user!r}: protocol {cfg.protocol!r} gives no candidates")
    scorer.fit(ds, split)
    users = np.array([u])
    hist = split.history(users, "test")  # (1, T): everything before the held-out test item
    batch = ScoreBatch(torch.from_numpy(users), torch.from_numpy(hist), torch.from_numpy(items[None, :]), "test")
    scores = scorer.score(batch)[0].numpy()  # (C,)
    order = np.argsort(-scores, kind="stable")
    result = scorer.last_results[0]
    held = int(cands.targets[row[0]])
    rank = None
    if held in items:  # 1-based and pessimistic, as the evaluation counts: every tie ranks above the held-out item
        at = int(np.nonzero(items == held)[0][0])
        rank = int((scores >= scores[at]).sum())
    return Recommendation(
        user=_plain(ds.user_index[u - 1]),
        method=cfg.method,
        protocol=cfg.protocol,
        llm=scorer.backend.name,
        history=[scorer.titles[i] for i in hist[0] if i > 0][-cfg.recent :],
        items=[
            {"item_id": _plain(ds.item_index[items[j] - 1]), "title": scorer.titles[items[j]],
             "score": round(float(scores[j]), 6)}
            for j in order[: cfg.top]
        ],
        held_out=HeldOut(scorer.titles[held], rank, int(len(items)), bool(cands.meta.get("target_inserted", False))),
        summary=result.extras.get("summary"),
    )


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x
