"""Zero-shot LLM rankers of candidate items: NIR three-step prompting, generative listwise ranking, the
LlamaRec verbalizer, pointwise title likelihood and TALLRec yes/no — each one file, one `RANKERS` entry, one test-matrix row.

`make_ranker("verbalizer", backend, {"bootstrap": 3})` builds one; the contract is `llmrec.rankers.base.Ranker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmrec.config import from_dict
from llmrec.llm.base import LLMBackend
from llmrec.rankers.base import GenerativeConfig, Ranker, RankerConfig, RankResult, RankStats, UserContext
from llmrec.rankers.listwise import ListwiseConfig, ListwiseRanker
from llmrec.rankers.nir import NIRConfig, NIRRanker
from llmrec.rankers.pointwise import PointwiseConfig, PointwiseRanker
from llmrec.rankers.verbalizer import VerbalizerConfig, VerbalizerRanker
from llmrec.rankers.yesno import YesNoConfig, YesNoRanker
from llmrec.registry import Registry


@dataclass(frozen=True)
class RankerEntry:
    cls: type
    config: type
    generative: bool  # writes text that is parsed (parse rate, invalid items) rather than reading log-probs


RANKERS: Registry[RankerEntry] = Registry("ranker")
RANKERS.add("nir", RankerEntry(NIRRanker, NIRConfig, True), "NIR three-step prompting (Wang & Lim 2023)")
RANKERS.add("listwise", RankerEntry(ListwiseRanker, ListwiseConfig, True), "generative list ranking (LLMRank)")
RANKERS.add("verbalizer", RankerEntry(VerbalizerRanker, VerbalizerConfig, False), "label log-probs (LlamaRec)")
RANKERS.add("pointwise", RankerEntry(PointwiseRanker, PointwiseConfig, False), "log p(title | history)")
RANKERS.add("yesno", RankerEntry(YesNoRanker, YesNoConfig, False), "log-odds of Yes per candidate (TALLRec)")


def make_ranker(name: str, backend: LLMBackend, options: dict[str, Any] | None = None) -> Ranker:
    """Build a registered ranker; `options` are its config's fields (unknown keys raise, listing the valid)."""
    entry = RANKERS.get(name)
    cfg = from_dict(entry.config, dict(options or {}), f"ranker {name}")
    return entry.cls(backend, cfg)  # type: ignore[no-any-return]


__all__ = [
    "RANKERS",
    "GenerativeConfig",
    "ListwiseConfig",
    "ListwiseRanker",
    "NIRConfig",
    "NIRRanker",
    "PointwiseConfig",
    "PointwiseRanker",
    "RankResult",
    "RankStats",
    "Ranker",
    "RankerConfig",
    "UserContext",
    "VerbalizerConfig",
    "VerbalizerRanker",
    "YesNoConfig",
    "YesNoRanker",
    "make_ranker",
]
