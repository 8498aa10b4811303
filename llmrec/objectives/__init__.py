"""Self-supervised and supervised objectives for ID user models, one per file, and their registry.

`build_objective("cl4srec", model, {"temperature": 0.5}, context)` → an `Objective` (an nn.Module) whose
`forward(SeqBatch) -> ObjectiveOutput(loss, logs)`. Each declares what it requires of the encoder
(`requires`: "causal", "bidirectional" or "any"); asking SASRec for a bidirectional-only objective raises
`ConfigError`. A new objective is one file + one `add` here + one row in `tests/objectives/`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from llmrec.config import from_dict
from llmrec.objectives.adaptssr import AdaptSSR
from llmrec.objectives.base import (
    Objective,
    ObjectiveContext,
    ObjectiveOutput,
    SeqBatch,
    check_compatible,
)
from llmrec.objectives.ccl import CCL
from llmrec.objectives.cl4srec import CL4SRec
from llmrec.objectives.coserec import CoSeRec
from llmrec.objectives.duorec import DuoRec
from llmrec.objectives.masked_item import MaskedItem
from llmrec.objectives.next_item import NextItem
from llmrec.objectives.ptum import PTUM
from llmrec.registry import Registry

OBJECTIVES: Registry[type[Objective]] = Registry("objective")
for _cls in (NextItem, MaskedItem, PTUM, CL4SRec, CoSeRec, DuoRec, CCL, AdaptSSR):
    OBJECTIVES.add(_cls.name, _cls)


def build_objective(
    name: str, model: nn.Module, options: dict[str, Any] | None = None, context: ObjectiveContext | None = None
) -> Objective:
    """Objective `name` around `model`; options are validated strictly (unknown keys raise `ConfigError`)."""
    cls = OBJECTIVES.get(name)
    check_compatible(cls, model)
    opts = from_dict(cls.Options, dict(options or {}), f"objective {name}")
    return cls(model, opts, context)


__all__ = [
    "OBJECTIVES",
    "Objective",
    "ObjectiveContext",
    "ObjectiveOutput",
    "SeqBatch",
    "build_objective",
]
