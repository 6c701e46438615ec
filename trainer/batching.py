"""Micro-batches by token budget: sequences packed so each forward pass holds at most `max_tokens`
padded tokens, sorted by length so that little padding is needed, right-padded within a batch.

A sequence carries its token ids, a loss mask (1 on the tokens that carry loss: the model's own
tokens for RL, the expert's response tokens for SFT), the behaviour logprobs of those tokens (RL:
the rollout engine's; zeros for SFT) and one scalar advantage (RL; 0 for SFT). With several
optimizer steps per rollout batch (`ppo_epochs`, `ppo_mini_batches`) the trainer adds its own
logprobs under the rollout weights (`prox_logprobs`, the PPO "old" policy) and, with a KL penalty,
the reference model's (`ref_logprobs`), both computed once before the first step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Sequence:
    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    advantage: float = 0.0
    prox_logprobs: list[float] | None = None
    """the trainer's logprobs under the weights that produced the rollouts (None: use the current ones)"""
    ref_logprobs: list[float] | None = None
    """the reference model's logprobs (None: compute them in the forward pass, when there is a KL term)"""


@dataclass
class MicroBatch:
    """Padded tensors for one forward pass: input_ids, attention_mask, loss_mask, old_logp (the engine's
    behaviour logprobs) [B, L]; advantages [B]; index [B], each row's position in the list given to
    `pack`; prox_logp and ref_logp [B, L] when every sequence carries them, else None. Logprobs are
    float64, exact copies of the stored floats (the loss casts them to the model's precision)."""

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor
    old_logp: Tensor
    advantages: Tensor
    index: Tensor | None = None
    prox_logp: Tensor | None = None
    ref_logp: Tensor | None = None
    offset: Tensor | None = None
    """[B], shared-prefix batches (`prefix.pack_shared`) only: the [B, L] tensors start at this position
    of each sequence, the tokens before it being the row's prefix"""
    prefix_ids: Tensor | None = None
    """[G, P], shared-prefix batches only: the prefixes, right-padded (prefix_mask [G, P]); group [B]"""
    prefix_mask: Tensor | None = None
    group: Tensor | None = None

    @property
    def prefix(self):
        """The shared prefixes (a `prefix.Prefix`) for `token_logprobs`, or None for a plain batch."""
        from chord_env.trainer.prefix import Prefix

        return None if self.prefix_ids is None else Prefix(self.prefix_ids, self.prefix_mask, self.group)

    @property
    def num_loss_tokens(self) -> int:
        return int(self.loss_mask.sum())

    @property
    def num_loss_sequences(self) -> int:
        return int((self.loss_mask.sum(dim=1) > 0).sum())

    def to(self, device: torch.device | str) -> MicroBatch:
        return MicroBatch(**{f.name: None if (t := getattr(self, f.name)) is None else t.to(device) for f in dataclasses.fields(self)})


def pack(sequences: list[Sequence], max_tokens: int, pad_id: int = 0) -> list[MicroBatch]:
    """Group sequences (longest first) into micro-batches of at most `max_tokens` padded tokens.

    A sequence longer than `max_tokens` gets a micro-batch of its own (it cannot be split: attention
    needs the whole prefix).
    """
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i].token_ids))
    groups: list[list[int]] = []
    for i in order:
        if groups and (len(groups[-1]) + 1) * len(sequences[groups[-1][0]].token_ids) <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [_collate([sequences[i] for i in group], pad_id, group) for group in groups]


def _optional(seqs: list[Sequence], name: str, shape: tuple[int, int]) -> Tensor | None:
    """The per-token field `name` of every sequence as a right-padded float64 tensor, or None if one lacks it."""
    if any(getattr(s, name) is None for s in seqs):
        return None
    out = torch.zeros(shape, dtype=torch.float64)
    for b, s in enumerate(seqs):
        out[b, : len(s.token_ids)] = torch.tensor(getattr(s, name), dtype=torch.float64)
    return out


def _collate(seqs: list[Sequence], pad_id: int, index: list[int] | None = None) -> MicroBatch:
    L = max(len(s.token_ids) for s in seqs)
    B = len(seqs)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, L), dtype=torch.long)
    loss_mask = torch.zeros((B, L), dtype=torch.bool)
    old_logp = torch.zeros((B, L), dtype=torch.float64)  # exact copies of the stored floats
    for b, s in enumerate(seqs):
        n = len(s.token_ids)
        input_ids[b, :n] = torch.tensor(s.token_ids)
        attention_mask[b, :n] = 1
        loss_mask[b, :n] = torch.tensor(s.loss_mask, dtype=torch.bool)
        old_logp[b, :n] = torch.tensor(s.logprobs, dtype=torch.float64)
    loss_mask[:, 0] = False  # the first token has no prediction
    advantages = torch.tensor([s.advantage for s in seqs], dtype=torch.float32)
    return MicroBatch(
        input_ids, attention_mask, loss_mask, old_logp, advantages,
        index=torch.tensor(index if index is not None else range(B), dtype=torch.long),
        prox_logp=_optional(seqs, "prox_logprobs", (B, L)), ref_logp=_optional(seqs, "ref_logprobs", (B, L)),
    )
