"""One user's recommendations, in two forms: any scorer over the catalogue (`Recommender`), or an LLM ranker over a
candidate protocol with the held-out item shown after ranking (`recommend(RecommendConfig)`).

`Recommender` (what `llmrec recommend --scorer` and `llmrec serve` run): the data set and the scorer are loaded
and fitted once; `recommend_many(queries)` answers any number of queries with ONE scorer call, which is what the
HTTP service's micro-batching relies on. A query is a known user (their whole sequence in the data is the
history: a served recommendation is for what comes next) or a history of raw item ids (a cold user, unknown to
the data). The history is masked: an item in it is never recommended. Scorers that cannot rank a whole
catalogue (`llm:*`) rank the top `candidates` unseen items of a first-stage `retriever` instead. For a hybrid,
each returned item carries its component scores (and the re-ranker's, when there is one): why it ranks there.

`recommend(RecommendConfig)` (`llmrec recommend --method`): history — the user's sequence as of the test phase,
everything except the held-out last item, exactly what `run_evaluation` hands a scorer; candidates — the user's
row of a candidate protocol (default `nir-uf:19`, which never inserts the held-out item). The ranker never sees
which candidate is held out; the result says where it landed (`Recommendation.held_out`), for a view that shows
it after ranking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmrec.data.canonical import DataConfig
from llmrec.errors import ConfigError, DataError, LLMRecError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from llmrec.llm.base import LLMBackend
    from llmrec.types import Dataset, ScoreBatch, Split

DEFAULT_PROTOCOL = "nir-uf:19"
DEFAULT_CANDIDATES = 20  # what an llm:* scorer ranks when `candidates` is 0: the retriever's top 20, as NIR / LlamaRec


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


# --- any scorer over the catalogue: `Recommender` -------------------------------------------------------------


@dataclass
class RecommenderConfig:
    """A recommender to load once (`llmrec recommend --scorer`, `llmrec serve`): the data, the scorer, and how
    the items it ranks are chosen."""

    dataset: str = ""
    scorer: str = "pop"  # any scorer spec: pop, itemknn, run:DIR, text:ENC[+ADAPTER], hybrid:FILE.yaml, llm:RANKER
    llm: str | None = None  # LLM backend spec for llm:* scorers and hybrid components (default hf:smollm2-135m)
    seed: int = 0
    # 0: every item outside the history is ranked; N: only the retriever's top N of them. llm:* scorers cannot
    # rank a catalogue, so 0 means DEFAULT_CANDIDATES for them.
    candidates: int = 0
    retriever: str = "itemknn"  # the first stage when candidates are retrieved (any scorer that ranks a catalogue)
    max_k: int = 0  # the largest k a query may ask for (0: the catalogue size); `llmrec serve` sets 100
    options: dict[str, Any] = field(default_factory=dict)  # scorer options, as for evaluate (--set options.K=V)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        for name in ("seed", "candidates", "max_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not self.scorer:
            raise ValueError("scorer must name a scorer spec (pop, itemknn, run:DIR, hybrid:FILE.yaml, …)")


class QueryError(LLMRecError):
    """A query the recommender refuses. `field` names the part of the request at fault (`user`, `history`, `k`);
    `kind` says what is wrong: unknown_user | unknown_items | empty | out_of_range | unsupported."""

    def __init__(self, field: str, kind: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.kind = kind


@dataclass(frozen=True)
class Query:
    """One validated request: whose history (internal item ids, oldest first) and how many items to return.
    Build it with `Recommender.query_user` or `Recommender.query_history`, which check the ids."""

    user: Any  # the raw user id, or None for a history given by item ids (a cold user)
    history: np.ndarray  # (T,) internal item ids, oldest first
    k: int
    internal_user: int = 0  # 1..U for a known user; 0 (the padding id) for a cold one


@dataclass
class RecommendedItem:
    """One recommended item: its raw id, display title, score, and (hybrids) each component's raw score."""

    item_id: Any
    title: str
    score: float
    components: dict[str, float] | None = None

    def to_dict(self, components: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": self.item_id, "title": self.title, "score": self.score}
        if components and self.components is not None:
            out["components"] = self.components
        return out


@dataclass
class UserRecommendations:
    """What `Recommender.recommend` returns; `to_dict()` is the command's and the service's JSON."""

    user: Any  # the raw user id, None for a cold user
    items: list[RecommendedItem]  # the top k, best first (fewer when fewer items could be ranked)
    n_ranked: int  # how many items were ranked: the catalogue less the history, or the retrieved candidates
    history_items: np.ndarray = field(repr=False, compare=False)  # (T,) internal item ids, oldest first
    names: tuple[list[Any], list[str]] = field(repr=False, compare=False)  # the recommender's (raw ids, titles)

    @property
    def history(self) -> list[tuple[Any, str]]:
        """(raw item id, title) of the whole history, oldest first (built on demand: histories can be long)."""
        ids, titles = self.names
        return [(ids[i], titles[i]) for i in self.history_items.tolist()]

    def to_dict(self, components: bool = True) -> dict[str, Any]:
        return {"user": self.user, "items": [it.to_dict(components) for it in self.items]}


def parse_item_ids(text: str) -> list[str]:
    """Item ids from free text (a `--history` argument, a history file, the page's text box): separated by
    commas, spaces or new lines; `#` starts a comment that runs to the end of its line."""
    import re

    lines = [line.split("#", 1)[0] for line in str(text).splitlines()]
    return [t for t in re.split(r"[\s,;]+", " ".join(lines)) if t]


class Recommender:
    """A fitted scorer over one data set, answering top-k queries; see the module doc.

    Not thread-safe: one scorer call at a time (the HTTP service runs every call on one worker thread).
    `calls` counts scorer calls and `queries` the queries they answered, so a caller can see the batching.
    """

    def __init__(self, cfg: RecommenderConfig, dataset: Dataset, split: Split, scorer: Any,
                 retriever: Any | None = None) -> None:
        from llmrec.parsing import display_title

        self.cfg = cfg
        self.dataset = dataset
        self.split = split
        self.scorer = scorer
        self.retriever = retriever
        self.n_items = dataset.n_items
        self.user_ids = [None] + [_plain(x) for x in dataset.user_index]  # internal id -> raw id
        self.item_ids = [None] + [_plain(x) for x in dataset.item_index]
        self._user_of = {str(x): i for i, x in enumerate(self.user_ids) if i}
        self._item_of = {str(x): i for i, x in enumerate(self.item_ids) if i}
        has = dataset.items.has_titles
        self.titles = [""] + [display_title(dataset.items.title(i)) if has else f"item {self.item_ids[i]}"
                              for i in range(1, self.n_items + 1)]
        self.needs_candidates = cfg.candidates > 0 or _cannot_rank_catalogue(scorer)
        self.n_candidates = cfg.candidates or DEFAULT_CANDIDATES
        if self.needs_candidates and retriever is None:
            raise ConfigError(f"scorer {cfg.scorer!r} ranks retrieved candidates: a retriever is needed")
        self.max_k = cfg.max_k or self.n_items
        self.is_hybrid = hasattr(scorer, "components") and hasattr(scorer, "first_stage")
        self._user_bound = _user_embedding_scorers(scorer)
        self.calls = 0
        self.queries = 0

    @classmethod
    def load(cls, cfg: RecommenderConfig, data_dir: str | None = None) -> Recommender:
        """Load the data set (leave-one-out split: `run:` models check they were trained on it), build and fit
        the scorer (and the retriever, when candidates are retrieved)."""
        from llmrec.data import leave_one_out, load_dataset
        from llmrec.scorers import ScorerContext, build_scorer

        if not cfg.dataset:
            raise ConfigError("a recommender needs a data set: --dataset NAME or PATH")
        dataset = load_dataset(cfg.dataset, data_dir, cfg.data)
        split = leave_one_out(dataset)
        scorer = build_scorer(cfg.scorer, ScorerContext(seed=cfg.seed, llm=cfg.llm, options=dict(cfg.options)))
        if hasattr(scorer, "bind_protocol"):  # a learned hybrid tunes its weights for full ranking
            scorer.bind_protocol("full")
        scorer.fit(dataset, split)
        retriever = None
        if cfg.candidates > 0 or _cannot_rank_catalogue(scorer):
            retriever = build_scorer(cfg.retriever, ScorerContext(seed=cfg.seed, llm=cfg.llm))
            if _cannot_rank_catalogue(retriever):
                raise ConfigError(f"retriever {cfg.retriever!r} cannot rank the catalogue: use itemknn, pop, run:DIR, …")
            retriever.fit(dataset, split)
        return cls(cfg, dataset, split, scorer, retriever)

    # -- queries ---------------------------------------------------------------------------------------------

    def check_k(self, k: Any) -> int:
        """k as an int in 1..max_k, or a QueryError naming `k`."""
        if isinstance(k, bool) or not isinstance(k, (int, str)) or not str(k).strip().lstrip("-").isdigit():
            raise QueryError("k", "out_of_range", f"k must be a whole number from 1 to {self.max_k}, got {k!r}")
        value = int(k)
        if not 1 <= value <= self.max_k:
            raise QueryError("k", "out_of_range", f"k must be from 1 to {self.max_k}, got {value}")
        return value

    def query_user(self, user: Any, k: Any = 10) -> Query:
        """A known user's query: their whole sequence in the data is the history."""
        u = self._user_of.get(str(user).strip())
        if u is None:
            examples = ", ".join(str(x) for x in self.user_ids[1:4])
            raise QueryError("user", "unknown_user",
                             f"unknown user {user!r} in data set {self.dataset.name!r} (users are ids such as {examples})")
        return Query(self.user_ids[u], self.split.sequence(u).copy(), self.check_k(k), u)

    def query_history(self, items: Any, k: Any = 10) -> Query:
        """A cold user's query: a history of raw item ids (a list, or text `parse_item_ids` reads), oldest first."""
        import numpy as np

        ids = parse_item_ids(items) if isinstance(items, str) else [str(x).strip() for x in items]
        ids = [x for x in ids if x]
        if not ids:
            raise QueryError("history", "empty", "the history is empty: give at least one item id")
        unknown = list(dict.fromkeys(x for x in ids if x not in self._item_of))
        if unknown:
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise QueryError("history", "unknown_items",
                             f"unknown item ids in the history: {', '.join(unknown[:10])}{more} "
                             f"(data set {self.dataset.name!r})")
        if self._user_bound:
            raise QueryError(
                "history", "unsupported",
                f"scorer {self._user_bound[0]!r} scores users by a learned user embedding: it cannot recommend for "
                f"a history of a user it never saw; use itemknn, run:DIR, text:ENC or a hybrid of them",
            )
        k = self.check_k(k)
        return Query(None, np.array([self._item_of[x] for x in ids], dtype=np.int64), k, 0)

    # -- scoring ---------------------------------------------------------------------------------------------

    def recommend(self, query: Query) -> UserRecommendations:
        return self.recommend_many([query])[0]

    def recommend_many(self, queries: list[Query]) -> list[UserRecommendations]:
        """Answer every query with one scorer call (plus one retriever call when candidates are retrieved)."""
        import numpy as np
        import torch

        from llmrec.evaluation.metrics import candidate_mask
        from llmrec.types import ScoreBatch, pad_left

        if not queries:
            return []
        lens = np.array([len(q.history) for q in queries], dtype=np.int64)
        ends = np.cumsum(lens)
        flat = np.concatenate([q.history for q in queries]).astype(np.int64)
        hist = torch.from_numpy(pad_left(flat, ends - lens, ends))  # (B, T) left-padded, most recent last
        users = torch.tensor([q.internal_user for q in queries], dtype=torch.long)  # (B,)
        cands = self._retrieve(users, hist) if self.needs_candidates else None  # (B, C) or None (C = N+1)
        batch = ScoreBatch(users, hist, cands, "test")
        with torch.inference_mode():
            scores = torch.as_tensor(self.scorer.score(batch)).detach().to("cpu", torch.float64)  # (B, C)
            comps = self._components(batch, scores.shape) if self.is_hybrid else {}
        self.calls += 1
        self.queries += len(queries)
        valid = candidate_mask(hist, cands, scores.shape[1])  # (B, C): no padding, no history item
        low = torch.finfo(torch.float64).min  # a valid item scored NaN or -inf still ranks above every masked one
        s = torch.where(valid, torch.nan_to_num(scores, nan=low, neginf=low), torch.full_like(scores, -torch.inf))
        order = _top_columns(s, max(q.k for q in queries))  # (B, ≤kmax) best first, ties by column
        # one conversion to Python per table, not one per item (tensor indexing costs microseconds a call)
        top_items = (order if cands is None else cands.gather(1, order)).tolist()  # (B, ≤kmax) item ids
        top_scores = scores.gather(1, order).tolist()
        top_parts = {name: v.gather(1, order).tolist() for name, v in comps.items()}
        n_valid = valid.sum(1).tolist()
        names = (self.item_ids, self.titles)
        out = []
        for b, q in enumerate(queries):
            recs = []
            for j in range(min(q.k, n_valid[b])):
                i = top_items[b][j]
                parts = {n: round(v[b][j], 6) for n, v in top_parts.items() if v[b][j] == v[b][j]} if comps else None
                recs.append(RecommendedItem(self.item_ids[i], self.titles[i], round(top_scores[b][j], 6), parts))
            out.append(UserRecommendations(q.user, recs, int(n_valid[b]), q.history, names))
        return out

    def _retrieve(self, users: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        """(B, n) item ids: the retriever's top n items outside each history, 0-padded where fewer exist."""
        import torch

        from llmrec.evaluation.metrics import candidate_mask
        from llmrec.types import ScoreBatch

        with torch.inference_mode():
            full = torch.as_tensor(self.retriever.score(ScoreBatch(users, hist, None, "test"))).to(torch.float64)
        valid = candidate_mask(hist, None, full.shape[1])  # (B, N+1)
        low = torch.finfo(torch.float64).min
        top = _top_columns(torch.where(valid, torch.nan_to_num(full, nan=low, neginf=low), torch.full_like(full, -torch.inf)),
                           self.n_candidates)  # (B, n)
        keep = torch.arange(top.shape[1])[None, :] < valid.sum(1, keepdim=True)
        return torch.where(keep, top, torch.zeros_like(top))

    def _components(self, batch: ScoreBatch, shape: torch.Size) -> dict[str, torch.Tensor]:
        """A hybrid's per-component (B, C) scores for the batch just scored, plus its re-ranker's (NaN outside
        the re-ranked top N). The hybrid keeps its components' scores of the last call (`last_components`);
        if it does not, each component is scored again."""
        import torch

        h = self.scorer
        comps = {k: torch.as_tensor(v).to(torch.float64) for k, v in (getattr(h, "last_components", None) or {}).items()}
        if set(comps) != set(h.components) or any(v.shape != shape for v in comps.values()):
            comps = {k: torch.as_tensor(c.score(batch)).to(torch.float64) for k, c in h.components.items()}
        rerank = _rerank_scores(h, shape)
        if rerank is not None:
            comps[getattr(h.reranker, "name", "rerank")] = rerank
        return comps

    # -- description -----------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What the service reports at /health: the data, the scorer and the batching counters."""
        return {
            "dataset": self.dataset.name, "scorer": self.cfg.scorer, "users": self.dataset.n_users,
            "items": self.n_items, "max_k": self.max_k,
            "candidates": f"{self.cfg.retriever} top {self.n_candidates}" if self.needs_candidates else "all items",
            "components": list(self.scorer.components) if self.is_hybrid else [],
            "scorer_calls": self.calls, "queries": self.queries,
        }

    def example_users(self, n: int = 500) -> list[Any]:
        return self.user_ids[1 : n + 1]


def _top_columns(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(B, min(k, C)) column indices by descending score, ties by ascending column — what a stable sort gives,
    so a query gets the same answer alone or in any batch — without sorting whole rows: topk finds each row's
    k-th score, every column above it is taken, and of the columns tied with it the leftmost that fill k."""
    import torch

    B, C = scores.shape
    k = min(k, C)
    kth = torch.topk(scores, k, dim=1).values[:, -1:]  # (B, 1) the k-th best score of each row
    above = scores > kth  # (B, C)
    tied = scores == kth
    need = k - above.sum(1, keepdim=True)  # (B, 1) how many tied columns complete the top k
    chosen = above | (tied & (tied.cumsum(1) <= need))  # (B, C) exactly k per row
    cols = chosen.nonzero()[:, 1].view(B, k)  # (B, k) ascending columns (nonzero is row-major)
    return cols.gather(1, torch.sort(scores.gather(1, cols), dim=1, descending=True, stable=True).indices)


def _cannot_rank_catalogue(scorer: Any) -> bool:
    from llmrec.scorers.llm import LLMScorer

    return isinstance(scorer, LLMScorer)


def _user_embedding_scorers(scorer: Any) -> list[str]:
    """Names of the scorers (the scorer itself, or a hybrid's components) that score a user by a learned user
    embedding and so know nothing of a history-only user."""
    from llmrec.scorers.baselines import BPR

    parts = [scorer, *getattr(scorer, "components", {}).values()]
    return [getattr(p, "name", "bpr") for p in parts if isinstance(p, BPR)]


def _rerank_scores(hybrid: Any, shape: torch.Size) -> torch.Tensor | None:
    """The re-ranker's scores of the last batch placed at their (B, C) columns (NaN elsewhere), when the hybrid
    has a re-ranker that keeps its last results (`llm:*`); the columns are the first stage's top N, as the hybrid
    chose them (padding dropped, as the LLM scorer drops it)."""
    import torch

    from llmrec.scorers.hybrid import NEG

    reranker = getattr(hybrid, "reranker", None)
    first = getattr(hybrid, "last_first_stage", None)
    results = getattr(reranker, "last_results", None)
    if reranker is None or first is None or not results or tuple(first.shape) != tuple(shape):
        return None
    if getattr(hybrid.cfg, "fusion", "") == "ltr":  # there the re-ranker is a feature over other columns
        return None
    if len(results) != shape[0]:
        return None
    n = min(hybrid.cfg.rerank.top_n, shape[1])
    top = torch.topk(first, n, dim=1).indices  # (B, n): the columns the hybrid re-ranked
    live = first.gather(1, top) > NEG / 2
    out = torch.full(tuple(shape), torch.nan, dtype=torch.float64)
    for b, r in enumerate(results):
        cols = top[b][live[b]]
        vals = torch.as_tensor(list(r.scores), dtype=torch.float64)
        if len(vals) == len(cols):
            out[b, cols] = vals
    return out
