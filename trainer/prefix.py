"""Shared-prefix forward (Prefix Grouper, arXiv 2506.05433): a GRPO group's prompt runs once.

A GRPO group is n samples of one prompt; in tool use the prompt (system prompt, tool schemas, task) is
long and the responses short, so the plain forward computes the same prompt n times. Here a micro-batch
holds G prompts ("prefixes") and N suffixes, each suffix continuing one of the prefixes:

1. prefix pass: the decoder over the G prefixes [G, P], its keys and values recorded per layer;
2. suffix pass: the decoder over the N suffixes [N, S], attending to their prefix's keys and values
   (indexed by group, so gradients from every member flow back into the one prefix pass), at positions
   P_g + j, under a padding mask over [prefix | suffix].

The logprob of the first suffix token comes from the prefix's last hidden state; the shared prefix never
holds a loss token (it ends at the group's first sampled token), so the loss and its gradient equal the
plain path's up to the order of floating-point sums.

Grouping: sequences with identical tokens before their first loss token (the prompt, for a rollout)
share a prefix; a group too large for the token budget is split, each piece keeping the prefix. The
budget counts G * P_max + N * S_max padded tokens, what the two passes actually hold.

Caches: the prefix pass records each layer's keys/values once into `_Record` layers; the suffix pass reads
them through `_Read` layers that return [prefix | new] without storing anything. Neither mutates state
when called again, so both are safe under gradient checkpointing, where the backward pass replays each
layer's forward: transformers drops `past_key_values` in checkpointed layers unless the layer is marked
`_can_checkpoint_with_cache` ("only reads the cache"), which is what we mark for the two passes. Needs a
transformers with per-layer cache objects (`transformers.cache_utils.DynamicLayer`, 4.56 on) and an
attention that takes a padding mask with a KV cache (eager, sdpa: the defaults for Llama-family models).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from chord_env.trainer.batching import MicroBatch, Sequence


@dataclass
class Prefix:
    """The shared prefixes of a micro-batch: ids and padding mask [G, P_max]; group [N], the prefix of each row."""

    ids: Tensor
    mask: Tensor
    group: Tensor


def prompt_length(seq: Sequence) -> int:
    """Tokens before the first loss token (never 0: token 0 has no prediction); the sequence's length
    minus one when it has no loss token."""
    first = next((t for t, m in enumerate(seq.loss_mask) if m and t > 0), None)
    return len(seq.token_ids) - 1 if first is None else first


def pack_shared(sequences: list[Sequence], max_tokens: int, pad_id: int = 0) -> list[MicroBatch]:
    """Micro-batches in which sequences with the same prompt share it (see the module docstring).

    Each micro-batch's tensors are in suffix coordinates: input_ids, attention_mask, loss_mask, old_logp,
    prox_logp, ref_logp [N, S_max] hold the tokens from each row's prefix length (`offset` [N]) on;
    `prefix` holds the prefixes. A unit (prefix + members) over the budget is split by members.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(sequences):
        groups.setdefault(tuple(s.token_ids[: prompt_length(s)]), []).append(i)
    units: list[tuple[int, list[int]]] = []  # (prefix length, member indices), members longest suffix first
    for key, members in groups.items():
        members = sorted(members, key=lambda i: -len(sequences[i].token_ids))
        piece: list[int] = []
        for i in members:
            s_max = len(sequences[piece[0] if piece else i].token_ids) - len(key)
            if piece and len(key) + (len(piece) + 1) * s_max > max_tokens:
                units.append((len(key), piece))
                piece = []
            piece.append(i)
        units.append((len(key), piece))
    units.sort(key=lambda u: -(u[0] + len(u[1]) * (len(sequences[u[1][0]].token_ids) - u[0])))
    batches: list[list[tuple[int, list[int]]]] = []
    for unit in units:
        trial = batches[-1] + [unit] if batches else None
        if trial is not None and _cost(sequences, trial) <= max_tokens:
            batches[-1] = trial
        else:
            batches.append([unit])
    return [_collate_shared(sequences, batch, pad_id) for batch in batches]


def _cost(sequences: list[Sequence], units: list[tuple[int, list[int]]]) -> int:
    p_max = max(p for p, _ in units)
    s_max = max(len(sequences[i].token_ids) - p for p, members in units for i in members)
    return len(units) * p_max + sum(len(m) for _, m in units) * s_max


def _collate_shared(sequences: list[Sequence], units: list[tuple[int, list[int]]], pad_id: int) -> MicroBatch:
    rows = [(g, p, i) for g, (p, members) in enumerate(units) for i in members]
    G, N = len(units), len(rows)
    p_max = max(p for p, _ in units)
    s_max = max(len(sequences[i].token_ids) - p for _, p, i in rows)
    prefix_ids = torch.full((G, p_max), pad_id, dtype=torch.long)
    prefix_mask = torch.zeros((G, p_max), dtype=torch.long)
    for g, (p, members) in enumerate(units):
        prefix_ids[g, :p] = torch.tensor(sequences[members[0]].token_ids[:p])
        prefix_mask[g, :p] = 1
    input_ids = torch.full((N, s_max), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((N, s_max), dtype=torch.long)
    loss_mask = torch.zeros((N, s_max), dtype=torch.bool)
    per_token = {name: torch.zeros((N, s_max), dtype=torch.float64) for name in ("logprobs", "prox_logprobs", "ref_logprobs")}
    for b, (_, p, i) in enumerate(rows):
        s = sequences[i]
        n = len(s.token_ids) - p
        input_ids[b, :n] = torch.tensor(s.token_ids[p:])
        attention_mask[b, :n] = 1
        loss_mask[b, :n] = torch.tensor(s.loss_mask[p:], dtype=torch.bool)
        for name, out in per_token.items():
            if getattr(s, name) is not None:
                out[b, :n] = torch.tensor(getattr(s, name)[p:], dtype=torch.float64)
    has = {name: all(getattr(sequences[i], name) is not None for _, _, i in rows) for name in ("prox_logprobs", "ref_logprobs")}
    return MicroBatch(
        input_ids, attention_mask, loss_mask, per_token["logprobs"],
        torch.tensor([sequences[i].advantage for _, _, i in rows], dtype=torch.float32),
        index=torch.tensor([i for _, _, i in rows], dtype=torch.long),
        prox_logp=per_token["prox_logprobs"] if has["prox_logprobs"] else None,
        ref_logp=per_token["ref_logprobs"] if has["ref_logprobs"] else None,
        offset=torch.tensor([p for _, p, _ in rows], dtype=torch.long),
        prefix_ids=prefix_ids, prefix_mask=prefix_mask, group=torch.tensor([g for g, _, _ in rows], dtype=torch.long),
    )


def shared_prefix_hidden(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, prefix: Prefix) -> tuple[Tensor, Tensor]:
    """(the last hidden state of each row's prefix [N, H], the suffixes' hidden states [N, S, H]), the
    final norm applied, as `model.base_model(...).last_hidden_state` of the whole sequences would give."""
    from transformers.cache_utils import Cache

    base = model.base_model
    n_layers = base.config.num_hidden_layers
    record = Cache(layers=[_Record() for _ in range(n_layers)])
    with _reads_cache_under_checkpointing(base):
        prefix_hidden = base(input_ids=prefix.ids, attention_mask=prefix.mask, past_key_values=record, use_cache=False).last_hidden_state
        read = Cache(layers=[_Read(layer.keys, layer.values, prefix.group) for layer in record.layers])
        lengths = prefix.mask.sum(dim=1)  # [G]
        positions = lengths[prefix.group][:, None] + torch.arange(input_ids.shape[1], device=input_ids.device)  # [N, S]
        mask = torch.cat([prefix.mask[prefix.group], attention_mask], dim=1)  # [N, P_max + S]
        hidden = base(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=read, use_cache=False).last_hidden_state
    last = prefix_hidden[prefix.group, lengths[prefix.group] - 1]  # [N, H]
    return last, hidden


@contextlib.contextmanager
def _reads_cache_under_checkpointing(base: nn.Module):
    """Mark the decoder layers as cache readers for the duration (see the module docstring)."""
    marked = [m for m in base.modules() if getattr(m, "gradient_checkpointing", False) and hasattr(type(m), "_can_checkpoint_with_cache")]
    for m in marked:
        m._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for m in marked:
            del m._can_checkpoint_with_cache


def _layer_base():
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError as e:  # pragma: no cover - depends on the installed transformers
        raise RuntimeError("share_prefix needs transformers >= 4.56 (per-layer KV cache objects)") from e
    return DynamicLayer


class _Record(_layer_base()):
    """Stores the first keys/values it is given and returns them; a replay (gradient checkpointing)
    returns the replayed ones and stores nothing."""

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states
        return key_states, value_states

    def get_seq_length(self) -> int:
        return 0  # the prefix pass starts from an empty cache, also when replayed


class _Read(_layer_base()):
    """Prefix keys/values [G, h, P, d], read per row through `group`: returns [prefix | new], stores nothing."""

    def __init__(self, keys: Tensor, values: Tensor, group: Tensor):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values, self.group = keys, values, group

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        return (torch.cat([self.keys[self.group], key_states], dim=-2), torch.cat([self.values[self.group], value_states], dim=-2))

    def get_seq_length(self) -> int:
        return self.keys.shape[-2]
