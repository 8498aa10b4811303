"""The Objective contract: `forward(batch) -> ObjectiveOutput(loss, logs)`, plus what it requires of the encoder.

An objective is an `nn.Module` built around a model (`SequenceEncoder`): it may own parameters (a projection, a
pooling query) that train with the encoder and are dropped at transfer. It reads a `SeqBatch` — windows of a
user's training sequence — and decides itself what to feed the encoder (shifted inputs, masked or augmented
views). Randomness comes only from `batch.rng` (augmentations, masks) and torch's global generator (dropout),
both seeded by the training loop, so a run is deterministic and resumable.

Reference implementation: `llmrec.objectives.next_item.NextItem`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.errors import ConfigError

Requires = Literal["any", "causal", "bidirectional"]


@dataclass
class SeqBatch:
    """B windows of training sequences.

    seq: (B, L) left-padded item ids, L = max_len + 1 (0 = padding), most recent last.
    fresh: (B, L) bool, the positions whose item counts as a prediction target in this window (see
        `llmrec.training.windows`); sequence-level objectives ignore it.
    users: (B,) internal user ids. rng: the generator every random choice of the objective draws from.
    """

    seq: torch.Tensor
    fresh: torch.Tensor
    users: torch.Tensor
    rng: torch.Generator
    epoch: int = 0


@dataclass
class ObjectiveOutput:
    """loss: a scalar tensor to minimise (a mean over `n` terms); logs: floats to report; n: how many terms the
    mean is over (used to weight ranks exactly under DDP)."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)
    n: int = 1


@dataclass
class ObjectiveContext:
    """What an objective may need beyond the model: the training item sequences (CoSeRec's item correlation,
    DuoRec's same-target index, sampled negatives), the number of epochs of its stage (curricula) and the user
    attributes where the data set has them (CCL's generator)."""

    split: Any = None  # llmrec.types.Split
    epochs: int = 1
    users: Any = None  # pandas DataFrame of user attributes indexed by internal user id, or None


class Objective(nn.Module):
    """Base class: subclasses set `name`, `requires`, an `Options` dataclass, and implement `forward`."""

    name: ClassVar[str] = ""
    requires: ClassVar[Requires] = "any"
    supervised: ClassVar[bool] = False  # the next-item objective of its encoder: a stage holding one early-stops

    @dataclass
    class Options:
        pass

    def __init__(self, model: nn.Module, options: Any = None, context: ObjectiveContext | None = None) -> None:
        super().__init__()
        check_compatible(type(self), model)
        self.model = model
        self.options = options if options is not None else self.Options()
        self.context = context or ObjectiveContext()

    def on_epoch_start(self, epoch: int) -> None:
        """Hook called by the loop before each epoch of the stage (curricula, refreshed correlations)."""

    def forward(self, batch: SeqBatch) -> ObjectiveOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The objective's own parameters (not the model's), for checkpoints."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("model.")}


def check_compatible(cls: type[Objective], model: nn.Module) -> None:
    """Raise `ConfigError` if the objective needs a causal / bidirectional encoder and `model` is not one."""
    bidirectional = bool(getattr(model, "bidirectional", False))
    if cls.requires == "bidirectional" and not bidirectional:
        raise ConfigError(
            f"objective {cls.name!r} needs a bidirectional encoder (e.g. model bert4rec), "
            f"but model {getattr(model, 'name', type(model).__name__)!r} is causal"
        )
    if cls.requires == "causal" and bidirectional:
        raise ConfigError(
            f"objective {cls.name!r} needs a causal encoder (e.g. model sasrec), "
            f"but model {getattr(model, 'name', type(model).__name__)!r} is bidirectional"
        )


# ----------------------------------------------------------------------------------------- shared pieces
def sequence_input(batch: SeqBatch, max_len: int) -> torch.Tensor:
    """The user's sequence as an encoder input: the last max_len items of each window (B, T), all-padding
    columns on the left trimmed (positions are counted from the right, so this changes nothing)."""
    return trim_left(batch.seq[:, -max_len:])


def trim_left(seq: torch.Tensor, keep_min: int = 1) -> torch.Tensor:
    """Drop leading columns that are padding in every row (B, T) → (B, T')."""
    nonzero = (seq != 0).any(dim=0).nonzero()
    first = int(nonzero[0]) if len(nonzero) else seq.shape[1] - keep_min
    return seq[:, min(first, seq.shape[1] - keep_min) :]


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, similarity: str = "dot",
             same: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent over 2B views (SimCLR): view a_i's positive is b_i and vice versa; the other 2B-2 are negatives.

    a, b: (B, H). same: optional (B, B) bool, pairs (i, j) that must not count as negatives (e.g. sequences with
    the same next item, DuoRec). Returns the mean over 2B anchors of
    -log( exp(s(z_i, z_i⁺)/τ) / Σ_{k ≠ i} exp(s(z_i, z_k)/τ) ).
    """
    B = a.shape[0]
    z = torch.cat([a, b], dim=0)  # (2B, H)
    if similarity == "cos":
        z = F.normalize(z, dim=-1)
    sim = z @ z.T / temperature  # (2B, 2B)
    eye = torch.eye(2 * B, dtype=torch.bool, device=z.device)
    blocked = eye.clone()
    if same is not None:
        s2 = same & ~torch.eye(B, dtype=torch.bool, device=z.device)
        blocked |= s2.repeat(2, 2)
    sim = sim.masked_fill(blocked, float("-inf"))
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(z.device)  # (2B,)
    return F.cross_entropy(sim, target)


def masked_cross_entropy(model: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Full-softmax cross-entropy of (M, H) states against (M,) item ids 1..N over every item."""
    logits = model.item_logits(hidden)  # (M, N)
    return F.cross_entropy(logits, targets - 1)
