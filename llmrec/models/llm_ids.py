"""LLM-IDs: the causal LLM itself as a sequential recommender, with one new token per item (P5's sequential task
with independent item-ID tokens; LC-Rec and the item-indexing study of Hua et al. 2023 add item tokens the same way).

    input   [prompt tokens] e_{x_1} … e_{x_t}        e_i: item i's token embedding (a new, trained row per item)
    output  p(i | x_≤t) = softmax_i( h_t · e_i )     over all N items (the same table: tied, as the LM's head is)

The base LM (default the embedded SmolLM2-135M) is frozen; peft LoRA adapts its projections (rank, alpha and
target modules in the options) and the item table is trained in full. Each item row starts as the mean of the
LM's own token embeddings of its title (`init: title`; `init_from_catalog`), so at step 0 the LM reads a history
of titles it already knows; `init: random` is the ablation without that text prior. The training loop, the
objectives, checkpoints and scoring are the ID models' (`llmrec pretrain --config eval/configs/llm_ids_ml-100k.yaml`),
so it is trained with `next_item` (full-softmax CE at every position) and scored as `run:DIR` on any protocol —
one forward pass per user ranks every item, where title likelihood needs one pass per candidate.

Only the trained tensors (the item table and the LoRA matrices) are module parameters: the frozen LM is held
outside the module tree, so checkpoints, `state_dict` and the optimiser see a few MB, not the base model.
`base_fingerprint` (the sha256 of the base weights, `llmrec.llm.lora_llm.weights_fingerprint`) is recorded in the
options on the first build and checked on every load: a checkpoint never runs on other base weights.

Conventions of the ID models: item ids 1..N, 0 padding, N+1 [MASK]; left-padded inputs (B, T), the most recent item
last. The prompt sits at the start of every row, padding between it and the first item is masked out, and the
LM's positions count only real tokens, so left padding changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from llmrec.errors import CheckpointError, ConfigError
from llmrec.models.sasrec import TiedCausalHead


@dataclass
class LLMIDsConfig:
    n_items: int = 0
    llm: str = "smollm2-135m"  # base causal LM: an alias, a local transformers folder or a hub id in the hub cache
    max_len: int = 50  # T: longer histories keep their most recent T items
    prompt: str = "Items a user interacted with, in order:"  # text before the item tokens
    init: Literal["title", "random"] = "title"  # item rows: mean of the title's token embeddings, or random
    r: int = 8
    alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    base_fingerprint: str = ""  # set on the first build; checked on every later one

    def __post_init__(self) -> None:
        if self.n_items < 1:
            raise ValueError(f"n_items must be ≥ 1, got {self.n_items}")
        if self.max_len < 1 or self.r < 1:
            raise ValueError("max_len and r must be ≥ 1")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.init not in ("title", "random"):
            raise ValueError(f"init must be 'title' or 'random', got {self.init!r}")
        if not self.prompt.strip():
            raise ValueError("prompt must not be empty: padding positions attend to it")
        if not self.target_modules:
            raise ValueError("target_modules: name at least one projection (e.g. q_proj, v_proj)")


def _load_base(spec: str) -> tuple[Any, Any, str]:
    """(frozen causal LM in fp32, its tokenizer, the fingerprint of its weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmrec.llm.lora_llm import local_model_dir, weights_fingerprint
    from llmrec.llm.models import resolve_model

    path = resolve_model(spec)
    folder = local_model_dir(path)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder))
        lm = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"llm-ids: cannot load base model {spec!r} from {folder} ({first})") from None
    lm.requires_grad_(False)
    return lm, tok, weights_fingerprint(folder)


class LLMIDs(TiedCausalHead, nn.Module):
    """A frozen causal LM + LoRA over item tokens. `forward(seq)` → (B, T, H) hidden states at the item positions;
    position t sees the prompt and items ≤ t and predicts item t+1; `encode`, `item_logits`: `TiedCausalHead`."""

    name = "llm-ids"
    bidirectional = False

    def __init__(self, cfg: LLMIDsConfig) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        lm, tok, fingerprint = _load_base(cfg.llm)
        if cfg.base_fingerprint and cfg.base_fingerprint != fingerprint:
            raise CheckpointError(
                f"llm-ids: these weights were trained on base model {cfg.llm!r} with weights "
                f"{cfg.base_fingerprint[:12]}, but {cfg.llm!r} now loads weights {fingerprint[:12]}; "
                f"use the base model it was trained on")
        cfg.base_fingerprint = fingerprint
        self.config = cfg
        self.n_items = cfg.n_items
        self.mask_token = cfg.n_items + 1
        self.max_len = cfg.max_len
        try:
            lm = get_peft_model(lm, LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.lora_dropout,
                                               target_modules=list(cfg.target_modules)))
        except ValueError as e:  # e.g. a target module the LM does not have
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"llm-ids: target_modules {list(cfg.target_modules)} do not fit {cfg.llm!r} "
                              f"({first})") from None
        # Held outside the module tree (object.__setattr__): state_dict, checkpoints and the optimiser see only
        # the trained tensors, registered below as the same Parameter objects the LM uses.
        object.__setattr__(self, "_lm", lm)
        object.__setattr__(self, "_tokenizer", tok)
        self.lora = nn.ParameterDict({n.replace(".", "__"): p for n, p in lm.named_parameters() if p.requires_grad})
        words = lm.get_input_embeddings().weight
        self.hidden = int(words.shape[1])
        self.item_emb = nn.Embedding(cfg.n_items + 2, self.hidden, padding_idx=0)
        with torch.no_grad():
            self.item_emb.weight.normal_(0.0, float(words.std()))
            self.item_emb.weight[0].zero_()
        ids = tok(cfg.prompt, add_special_tokens=False).input_ids
        self.register_buffer("prompt_ids", torch.tensor(ids, dtype=torch.long), persistent=False)

    # the hidden LM follows the module's mode and device
    def train(self, mode: bool = True) -> LLMIDs:
        self._lm.train(mode)
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        self._lm._apply(fn)
        return super()._apply(fn, recurse)

    @torch.no_grad()
    def init_from_catalog(self, titles: list[str]) -> None:
        """`init: title`: row i = the mean of the LM's input embeddings of item i's title (titles[i-1])."""
        if self.config.init != "title":
            return
        if len(titles) != self.n_items:
            raise ValueError(f"llm-ids: {len(titles)} titles for {self.n_items} items")
        words = self._lm.get_input_embeddings().weight
        enc = self._tokenizer([" " + t for t in titles], add_special_tokens=False).input_ids
        for i, ids in enumerate(enc, start=1):
            if ids:
                self.item_emb.weight[i] = words[torch.tensor(ids)].mean(0)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T) left-padded item ids (T ≤ max_len; longer inputs keep their last max_len) → (B, T, H)."""
        seq = seq[:, -self.max_len :]
        B, T = seq.shape
        P = int(self.prompt_ids.numel())
        keep = seq != 0
        words = self._lm.get_input_embeddings()(self.prompt_ids)[None].expand(B, P, self.hidden)
        x = torch.cat([words, self.item_emb(seq)], dim=1)  # (B, P+T, H)
        mask = torch.cat([torch.ones(B, P, dtype=torch.long, device=seq.device), keep.long()], dim=1)
        pos = (mask.cumsum(1) - 1).clamp(min=0)  # real tokens only: padding shifts nothing
        body = self._lm.get_base_model().get_decoder()
        h = body(inputs_embeds=x, attention_mask=mask, position_ids=pos).last_hidden_state[:, P:]
        return h * keep[..., None].to(h.dtype)
