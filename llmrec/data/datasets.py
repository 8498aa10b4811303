"""Registered data sets and `load_dataset(name_or_path)`: a registered name, or a path in a generic format.

A registered data set is one `DatasetSpec`: the sub-folder it lives in under a data root, the files that
must be there, how to load them, (where the originals are public) how to download them with checksums, and
the words LLM prompts use for its items (`Domain`: movies watched; generic items otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmrec.data import amazon, movielens, nir
from llmrec.data.canonical import DataConfig, RawData, build_dataset
from llmrec.data.formats import detect_format, load_folder, load_sequence_path
from llmrec.data.sources import RemoteFile, data_roots, download, extract_zip
from llmrec.errors import DataError, UnknownNameError
from llmrec.io import cache_dir, sha256_file
from llmrec.registry import Registry
from llmrec.types import Dataset, Domain


@dataclass
class DatasetSpec:
    """How to find, fetch and load one registered data set."""

    name: str
    folder: str  # sub-folder of a data root
    files: list[str]  # must exist for the folder to count as present
    load: Callable[[Path, Path], RawData]  # (folder, data root) -> RawData
    description: str
    citation: str
    terms: str
    fetch: Callable[[Path], None] | None = None  # fills <cache>/data/<folder>
    extra: dict = field(default_factory=dict)
    domain: Domain = field(default_factory=Domain)  # the words LLM prompts use for its items


DATASETS: Registry[DatasetSpec] = Registry("data set")


def _fetch_ml100k(root: Path) -> None:
    archive = download(movielens.ML100K_ZIP, cache_dir() / "downloads" / "ml-100k.zip")
    target = root / "ml-100k"
    extract_zip(archive, target, strip="ml-100k/")
    for member, sha in movielens.ML100K_MEMBERS.items():
        if sha256_file(target / member) != sha:
            raise DataError(f"{target / member}: checksum mismatch after extraction")


def _fetch_files(files: dict[str, RemoteFile], folder: Path) -> None:
    for fname, remote in files.items():
        download(remote, folder / fname)


_ML_TERMS = "GroupLens terms: research use only, no redistribution; cite Harper & Konstan, TiiS 2015."
_MOVIES = Domain(item_kind="movie", action="watched")
_AMZ_TERMS = "Amazon review data (McAuley lab), research use; cite He & McAuley WWW 2016 and Zhou et al. CIKM 2020."

DATASETS.add(
    "ml-100k",
    DatasetSpec(
        "ml-100k", "ml-100k", ["u.data", "u.item"],
        lambda folder, root: movielens.load_ml100k(folder),
        "MovieLens-100K: 943 users, 1,682 movies, 100,000 ratings (titles, genres, user attributes)",
        "F. M. Harper and J. A. Konstan. The MovieLens Datasets: History and Context. TiiS 5(4), 2015.",
        _ML_TERMS, fetch=_fetch_ml100k, domain=_MOVIES,
    ),
)
for _name, _s3 in (("beauty", "Beauty"), ("sports", "Sports_and_Outdoors"), ("toys", "Toys_and_Games")):
    DATASETS.add(
        _name,
        DatasetSpec(
            _name, "amazon-s3rec", [f"{_s3}.txt"],
            (lambda s3: lambda folder, root: amazon.load_s3rec(folder, s3))(_s3),
            f"Amazon-2014 {_s3}, 5-core, S3-Rec sequence files (no titles; attribute ids)",
            "R. He and J. McAuley, WWW 2016; K. Zhou et al., S3-Rec, CIKM 2020.",
            _AMZ_TERMS,
            fetch=(lambda s3: lambda root: _fetch_files(amazon.remote_files(s3), root / "amazon-s3rec"))(_s3),
        ),
    )
DATASETS.add(
    "nir-ml-100k",
    DatasetSpec(
        "nir-ml-100k", "nir-ml-100k", ["ml_100k.json"],
        lambda folder, root: nir.load_nir(folder, root / "ml-100k" if (root / "ml-100k").is_dir() else None),
        "NIR's ML-100K inputs: 943 title sequences (≤50 + target) and the 170 published 19-candidate sets",
        "L. Wang and E.-P. Lim. Zero-Shot Next-Item Recommendation using Large Pretrained Language Models. 2023.",
        _ML_TERMS + " The NIR repository has no license file.",
        fetch=lambda root: _fetch_files(nir.NIR_FILES, root / "nir-ml-100k"), domain=_MOVIES,
    ),
)


def locate(spec: DatasetSpec, data_dir: str | Path | None = None, allow_download: bool = True) -> tuple[Path, Path]:
    """(folder, root) of a registered data set, downloading into the user cache when nowhere else."""
    roots = data_roots(data_dir)
    for root, _origin in roots:
        folder = root / spec.folder
        if all((folder / f).is_file() for f in spec.files):
            return folder, root
    cache_root = cache_dir() / "data"
    if data_dir is None and allow_download and spec.fetch is not None:
        spec.fetch(cache_root)
        folder = cache_root / spec.folder
        if all((folder / f).is_file() for f in spec.files):
            return folder, cache_root
    looked = "; ".join(f"{r / spec.folder} ({o})" for r, o in roots)
    raise DataError(f"data set {spec.name!r} not found: looked for {', '.join(spec.files)} in {looked}")


def load_dataset(
    name_or_path: str | Path, data_dir: str | Path | None = None, cfg: DataConfig | None = None
) -> Dataset:
    """Load a registered data set by name, or a folder / sequence file given as a path."""
    name = str(name_or_path)
    if name in DATASETS:
        spec = DATASETS.get(name)
        folder, root = locate(spec, data_dir)
        raw = spec.load(folder, root)
        return build_dataset(name, raw, cfg, source=str(folder), domain=spec.domain)
    path = Path(name).expanduser()
    if path.exists():
        kind = detect_format(path)
        raw = load_folder(path) if kind == "folder" else load_sequence_path(path)
        return build_dataset(path.name, raw, cfg, source=str(path))
    raise UnknownNameError(
        f"unknown data set {name!r}; known: {', '.join(DATASETS.names())} — or give a path to a folder with "
        f"interactions.csv or to a sequence file"
    )
