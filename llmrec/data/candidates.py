"""Candidate sets: sampled once with a seed, saved with a content hash, shared by every method.

Protocols (`make_candidates(..., protocol=...)`):
- `full`: every item; the user's history is masked by the evaluator.
- `sampled:N` / `sampled:N:pop`: N negatives drawn without replacement from the items the user never
  interacted with (uniformly, or in proportion to training popularity), plus the target at a seeded position.
- `candidates:FILE`: fixed sets a user brings (TSV `user_id<TAB>target_item_id<TAB>space-separated ids`, raw
  ids, one line per user; a target absent from its line is inserted at a seeded random position).
- `nir`: the NIR paper's 170 published 19-title candidate sets (data set `nir-ml-100k`).
- `nir-uf:N` / `nir-if:N`: NIR's user filtering (items of the 12 most similar users, weighted by similarity
  over multi-hot histories) or item filtering (co-occurrence neighbours of the user's items), top N. The target
  is NOT inserted: users whose target is missing count as misses (`meta["target_in_candidates"]`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from llmrec.data.readers import read_lines, require_file
from llmrec.errors import CacheError, DataError, UnknownNameError
from llmrec.io import cache_dir
from llmrec.types import CandidateSet, Dataset, Phase, Split, _ranges, pad_left

PROTOCOLS = ["full", "sampled:N", "sampled:N:pop", "candidates:FILE", "nir", "nir-uf:N", "nir-if:N"]
NIR_NUM_USERS = 12  # similar users in NIR's user filtering (the authors' script), the user itself included


def make_candidates(
    dataset: Dataset,
    split: Split,
    protocol: str = "full",
    phase: Phase = "test",
    seed: int = 0,
    *,
    data_dir: str | Path | None = None,
    use_cache: bool = True,
) -> CandidateSet:
    """Build (or load from the cache) the candidate set of `protocol` for `phase`; see the module doc."""
    kind, _, arg = protocol.partition(":")
    n = parse_protocol(protocol, dataset.n_items)
    users = split.eval_users(phase)
    targets = split.targets(users, phase)
    if kind == "full":
        return CandidateSet("full", phase, users, targets, None, split.hash, seed)
    if kind == "candidates":
        return read_candidate_file(Path(arg), dataset, split, phase, seed)
    path = _cache_path(dataset, split, protocol, phase, seed) if use_cache else None
    if path is not None and path.is_file():
        try:
            return CandidateSet.load(path)
        except DataError as e:
            raise CacheError(f"{e}; it is a cached candidate set: delete {path} and {path.with_suffix('.json')} "
                             f"and rerun to rebuild it") from None
    if kind == "sampled":
        how = arg.partition(":")[2] or "uniform"
        cs = sample_negatives(split, users, targets, phase, n, how, seed)
        cs.protocol = protocol
    elif kind == "nir":
        cs = published_nir_candidates(dataset, split, data_dir)
    else:  # nir-uf / nir-if
        fn = nir_user_filtering if kind == "nir-uf" else nir_item_filtering
        items = fn(split, users, phase, n)
        hit = (items == targets[:, None]).any(axis=1)
        cs = CandidateSet(protocol, phase, users, targets, items, split.hash, seed,
                          {"target_in_candidates": int(hit.sum()), "target_inserted": False})
    if path is not None:
        cs.save(path)
    return cs


def parse_protocol(protocol: str, n_items: int) -> int:
    """Check a protocol string against a catalogue of `n_items` before any work; returns its N (0 if none).

    Raises `UnknownNameError` for an unknown kind and `DataError` (naming the protocol and the valid form) for a
    bad argument: an argument to `full` / `nir`, N that is not a whole number ≥ 1, `nir-uf:N` / `nir-if:N`
    with N ≥ the catalogue size (they pick N items the user has not seen), a `candidates:` without a file.
    """
    kind, sep, arg = protocol.partition(":")
    if kind not in ("full", "nir", "sampled", "candidates", "nir-uf", "nir-if"):
        raise UnknownNameError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if kind in ("full", "nir"):
        if sep:
            raise DataError(f"protocol {protocol!r}: {kind!r} takes no argument (use --protocol {kind})")
        return 0
    if kind == "candidates":
        if not arg:
            raise DataError("protocol candidates:FILE needs a file path, e.g. --protocol candidates:my_sets.tsv")
        return 0
    if kind == "sampled":
        m = re.fullmatch(r"(\d+)(?::(uniform|pop))?", arg)
        if not m or int(m.group(1)) < 1:
            raise DataError(f"protocol {protocol!r}: expected sampled:N or sampled:N:pop with N a whole number ≥ 1")
        return int(m.group(1))
    if not sep:
        arg = "19"  # NIR's candidate count
    if not re.fullmatch(r"\d+", arg) or not 1 <= int(arg) < n_items:
        raise DataError(f"protocol {protocol!r}: expected {kind}:N with N a whole number, 1 ≤ N < {n_items} "
                        f"(the catalogue size; NIR uses {kind}:19)")
    return int(arg)


def _cache_path(dataset: Dataset, split: Split, protocol: str, phase: str, seed: int) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", protocol)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset.name)
    return cache_dir() / "candidates" / name / split.hash / f"{slug}-{phase}-seed{seed}.npz"


def _insert_targets(negs: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(U, n) negatives + (U,) targets → (U, n+1) with each target at a seeded random position."""
    U, n = negs.shape
    pos = rng.integers(0, n + 1, size=U)  # (U,)
    idx = np.arange(n + 1)[None, :]  # (1, n+1)
    src = np.clip(np.where(idx < pos[:, None], idx, idx - 1), 0, max(n - 1, 0))
    out = np.take_along_axis(negs, src, axis=1) if n else np.zeros((U, 1), dtype=np.int64)
    out[idx.repeat(U, 0) == pos[:, None]] = targets
    return out.astype(np.int64)


def sample_negatives(
    split: Split, users: np.ndarray, targets: np.ndarray, phase: Phase, n: int, how: str, seed: int
) -> CandidateSet:
    """Vectorised sampling without replacement via random keys (uniform) or exponential races (popularity):
    for each user, the n smallest keys among items outside the user's whole sequence."""
    rng = np.random.default_rng(seed)
    N = split.n_items
    seen = split.train_matrix("test")  # (U+1, N+1): history before the test target
    # exclude the whole sequence: the test targets too
    rows = np.arange(split.n_users + 1)
    last = split.indptr[1:] - 1
    has = split.lengths > 0
    seen = seen + sp.csr_matrix(
        (np.ones(int(has.sum()), np.float32), (rows[has], split.items[last[has]])), shape=seen.shape
    )
    if how == "pop":
        pop = np.asarray(split.train_matrix("train").sum(axis=0)).ravel().astype(np.float64)  # (N+1,)
        rate = pop / max(pop.sum(), 1.0)
    k = min(n, N)  # no user has more than N (catalogue) negatives, whatever n asks: at most N columns
    out = np.zeros((len(users), k), dtype=np.int64)
    chunk = max(1, int(2e7 // (N + 1)))
    for s in range(0, len(users), chunk):
        u = users[s : s + chunk]
        keys = rng.random((len(u), N + 1))  # (B, N+1)
        if how == "pop":
            with np.errstate(divide="ignore"):
                keys = -np.log(keys) / rate[None, :]
        keys[:, 0] = np.inf
        sub = seen[u].tocoo()
        keys[sub.row, sub.col] = np.inf
        part = np.argpartition(keys, k - 1, axis=1)[:, :k]  # (B, k) the k smallest keys, unordered
        order = np.argsort(np.take_along_axis(keys, part, 1), axis=1, kind="stable")
        chosen = np.take_along_axis(part, order, 1)
        chosen = np.where(np.isfinite(np.take_along_axis(keys, chosen, 1)), chosen, 0)
        out[s : s + len(u), :k] = chosen
    items = _insert_targets(out, targets, rng)
    short = int((out == 0).any(axis=1).sum())
    meta = {"negatives": n, "sampling": how, "target_inserted": True}
    if short:
        meta["users_with_fewer_negatives"] = short
    return CandidateSet(f"sampled:{n}", phase, users, targets, items, split.hash, seed, meta)


def nir_user_filtering(split: Split, users: np.ndarray, phase: Phase, n: int,
                       num_users: int = NIR_NUM_USERS) -> np.ndarray:
    """NIR user filtering: similarity = dot product of multi-hot histories; the `num_users` most similar users
    (the user itself included, ties to the lower user id, as in the authors' script) vote for their items with
    weight sim / Σ sim; items the user has seen are excluded; the top `n` by vote. Equal votes keep the order in
    which the authors' loop first meets the items (similar users by rank, then each one's history in order).
    Rows are padded with 0 when fewer than `n` items get a vote."""
    X = split.train_matrix(phase).astype(np.float64)  # (U+1, N+1) binary
    XT = X.T.tocsc()
    starts, ends = split.history_bounds(np.arange(split.n_users + 1), phase)
    lens = ends - starts
    C = sp.csr_matrix(  # (U+1, N+1) occurrence counts
        (np.ones(int(lens.sum())), (np.repeat(np.arange(split.n_users + 1), lens), split.items[_ranges(starts, ends)])),
        shape=X.shape,
    )
    L = int(max((ends - starts).max(), 1))
    # chronological histories, left-aligned: H[v, p] = p-th item of user v (0 = none)
    H = pad_left(split.items, starts, ends, L)
    shift = L - (ends - starts)
    pos = np.arange(L)[None, :] - shift[:, None]  # position of H[v, p] in v's history (negative = padding)
    out = np.zeros((len(users), n), dtype=np.int64)
    N1 = X.shape[1]
    chunk = 256
    for s in range(0, len(users), chunk):
        u = users[s : s + chunk]
        B = len(u)
        sims = (X[u] @ XT).toarray()  # (B, U+1) co-counts with every user
        k = min(num_users, sims.shape[1])
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # (B, k)
        w = np.take_along_axis(sims, top, 1)
        w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        # votes accumulated rank by rank, in the authors' order, so float sums (and their ties) are identical;
        # an item repeated in a history votes once per occurrence, as in their loop
        votes = np.zeros((B, N1))
        for r in range(k):
            votes += w[:, r, None] * C[top[:, r]].toarray()
        # first meeting of each item in the authors' loop order: (rank of the similar user, history position)
        first = np.full((B, N1), np.iinfo(np.int64).max, dtype=np.int64)
        key = np.arange(k)[None, :, None] * L + pos[top]  # (B, k, L)
        ok = pos[top] >= 0
        rows = np.broadcast_to(np.arange(B)[:, None, None], key.shape)
        np.minimum.at(first, (rows[ok], H[top][ok]), key[ok])
        out[s : s + B] = _top_unseen(votes, X[u], n, tiebreak=first)
    return out


def nir_item_filtering(split: Split, users: np.ndarray, phase: Phase, n: int, neighbours: int = 19) -> np.ndarray:
    """NIR item filtering: item similarity = co-occurrence count over users' histories; each history item adds
    the similarities of its `neighbours` most similar items; seen items excluded; the top `n`."""
    X = split.train_matrix(phase)  # (U+1, N+1)
    Xt = X.T.tocsr()
    N1 = X.shape[1]
    rows, cols, vals = [], [], []
    chunk = max(1, int(2e7 // N1))
    for s in range(0, N1, chunk):
        co = (Xt[s : s + chunk] @ X).toarray()  # (b, N+1) co-occurrence counts
        k = min(neighbours, N1)
        top = np.argsort(-co, axis=1, kind="stable")[:, :k]
        v = np.take_along_axis(co, top, 1)
        keep = v > 0
        r = np.repeat(np.arange(s, s + len(co)), k).reshape(len(co), k)
        rows.append(r[keep])
        cols.append(top[keep])
        vals.append(v[keep])
    K = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N1, N1))
    out = np.zeros((len(users), n), dtype=np.int64)
    for s in range(0, len(users), 512):
        u = users[s : s + 512]
        votes = (X[u] @ K).toarray()  # (B, N+1)
        out[s : s + len(u)] = _top_unseen(votes, X[u], n)
    return out


def _top_unseen(votes: np.ndarray, seen: sp.csr_matrix, n: int, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Top-n items by vote (ties by `tiebreak`, else item id), seen items and item 0 excluded, 0-padded."""
    votes = votes.astype(np.float64)
    votes[:, 0] = 0
    coo = seen.tocoo()
    votes[coo.row, coo.col] = 0
    if tiebreak is None:
        order = np.argsort(-votes, axis=1, kind="stable")[:, :n]
    else:
        order = np.lexsort((tiebreak, -votes), axis=-1)[:, :n]
    picked = np.take_along_axis(votes, order, 1)
    return np.where(picked > 0, order, 0).astype(np.int64)


def published_nir_candidates(dataset: Dataset, split: Split, data_dir: str | Path | None = None) -> CandidateSet:
    """The NIR authors' 170 published candidate sets (19 titles each, in their prompt order)."""
    from llmrec.data import nir
    from llmrec.data.datasets import DATASETS, locate

    if dataset.name != "nir-ml-100k":
        raise DataError(f"protocol 'nir' is defined on data set nir-ml-100k (the paper's inputs), not {dataset.name!r}")
    folder, _ = locate(DATASETS.get("nir-ml-100k"), data_dir)
    titles = dataset.items.frame["title"]
    lookup = {t: int(i) for i, t in titles.items()}
    records = nir.published_candidates(folder, set(lookup))
    users = np.array([dataset.internal_user(r["pid"]) for r in records], dtype=np.int64)
    items = np.array([[lookup[t] for t in r["candidates"]] for r in records], dtype=np.int64)
    targets = split.targets(users, "test")
    gt = np.array([lookup.get(r["target"], -1) for r in records])
    if (gt != targets).any():
        raise DataError("nir: the published ground truth does not match the data set's last items")
    meta = {"source": nir.RESULTS_FILE, "target_in_candidates": int((items == targets[:, None]).any(1).sum()),
            "gpt35_hit_at_10": float(np.mean([r["hit"] for r in records])), "target_inserted": False}
    return CandidateSet("nir", "test", users, targets, items, split.hash, 2023, meta)


def read_candidate_file(path: Path, dataset: Dataset, split: Split, phase: Phase, seed: int = 0) -> CandidateSet:
    """TSV lines `user_id<TAB>target_item_id<TAB>cand1 cand2 …` (raw ids; an optional header line), one line per
    user. A target missing from its line is inserted at a seeded random position (`seed`), never at a fixed one:
    a ranker that ignores the user (e.g. prefers the last column) must score at chance."""
    require_file(path, "candidate TSV: user_id, target_item_id, space-separated candidate ids")
    rng = np.random.default_rng(seed)
    users, targets, rows = [], [], []
    first_line: dict[int, int] = {}
    inserted = 0
    item_pos = {str(k): i + 1 for i, k in enumerate(dataset.item_index)}
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip() or (n == 1 and line.lower().startswith("user")):
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            raise DataError(f"{path}: line {n}: expected 3 tab-separated fields (user_id, target_item_id, "
                            f"candidate ids), got {len(parts)}")
        try:
            u = dataset.internal_user(parts[0].strip())
        except DataError:
            raise DataError(f"{path}: line {n}: unknown user_id {parts[0]!r}") from None
        if u in first_line:
            raise DataError(f"{path}: line {n}: user {parts[0].strip()!r} already has a candidate set on line "
                            f"{first_line[u]}; give one line per user")
        first_line[u] = n
        ids = []
        for tok in [parts[1].strip()] + parts[2].split():
            if tok not in item_pos:
                raise DataError(f"{path}: line {n}: unknown item id {tok!r}")
            ids.append(item_pos[tok])
        target, cands = ids[0], list(dict.fromkeys(ids[1:]))
        expected = int(split.targets(np.array([u]), phase)[0]) if split.lengths[u] >= 2 else -1
        if target != expected:
            raise DataError(f"{path}: line {n}: target {parts[1]!r} is not user {parts[0]!r}'s {phase} item "
                            f"under the leave-one-out split")
        if target not in cands:
            cands.insert(int(rng.integers(0, len(cands) + 1)), target)  # a seeded position, any of len+1
            inserted += 1
        users.append(u)
        targets.append(target)
        rows.append(cands)
    if not rows:
        raise DataError(f"{path}: no candidate lines")
    width = max(len(r) for r in rows)
    items = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        items[i, : len(r)] = r
    return CandidateSet(f"candidates:{path.name}", phase, np.array(users, np.int64), np.array(targets, np.int64),
                        items, split.hash, seed, {"file": str(path), "target_inserted": True,
                                                  "targets_inserted": inserted})
