"""Micro-batches by token budget: sequences packed so each forward pass holds at most `max_tokens`
padded tokens, sorted by length so that little padding is needed, right-padded within a batch.

A sequence carries its token ids, a loss mask (1 on the tokens that carry loss: the model's own
tokens for RL, the expert's response tokens for SFT), the behaviour logprobs of those tokens (RL;
zeros for SFT) and one scalar advantage (RL; 0 for SFT).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Sequence:
    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    advantage: float = 0.0


@dataclass
class MicroBatch:
    """Padded tensors for one forward pass: input_ids, attention_mask, loss_mask, old_logp [B, L];
    advantages [B]."""

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor
    old_logp: Tensor
    advantages: Tensor

    @property
    def num_loss_tokens(self) -> int:
        return int(self.loss_mask.sum())

    @property
    def num_loss_sequences(self) -> int:
        return int((self.loss_mask.sum(dim=1) > 0).sum())

    def to(self, device: torch.device | str) -> MicroBatch:
        return MicroBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.loss_mask, self.old_logp, self.advantages)))


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
    return [_collate([sequences[i] for i in group], pad_id) for group in groups]


def _collate(seqs: list[Sequence], pad_id: int) -> MicroBatch:
    L = max(len(s.token_ids) for s in seqs)
    B = len(seqs)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, L), dtype=torch.long)
    loss_mask = torch.zeros((B, L), dtype=torch.bool)
    old_logp = torch.zeros((B, L), dtype=torch.float32)
    for b, s in enumerate(seqs):
        n = len(s.token_ids)
        input_ids[b, :n] = torch.tensor(s.token_ids)
        attention_mask[b, :n] = 1
        loss_mask[b, :n] = torch.tensor(s.loss_mask, dtype=torch.bool)
        old_logp[b, :n] = torch.tensor(s.logprobs, dtype=torch.float32)
    loss_mask[:, 0] = False  # the first token has no prediction
    advantages = torch.tensor([s.advantage for s in seqs], dtype=torch.float32)
    return MicroBatch(input_ids, attention_mask, loss_mask, old_logp, advantages)
