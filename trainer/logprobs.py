"""Token logprobs of a causal LM at the positions that carry loss, without full-vocabulary logits everywhere.

The LM head is applied only to the hidden states that predict a loss token (docs/platform.md,
"Training speed on CPU": with a 49,152-entry vocabulary, the logits dominate memory and time), in
chunks of `chunk_tokens` rows, each under activation checkpointing when gradients are on, so at most
one chunk of [chunk, V] logits is alive at a time, in fp32 only inside the chunk. The same pass returns the detached
statistics that some SFT token weights need (entropy, top-2 margin; `token_weights.token_stats`).

Works for any transformers causal LM that exposes `base_model` (the decoder stack returning
`last_hidden_state`) and `get_output_embeddings()` (the LM head), e.g. Llama, Qwen2, SmolLM2. With a
`prefix`, the decoder runs each shared prompt once (`prefix.py`, Prefix Grouper).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from chord_env.trainer.prefix import Prefix, shared_prefix_hidden
from chord_env.trainer.token_weights import token_stats


def token_logprobs(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    loss_mask: Tensor,
    stats: tuple[str, ...] = (),
    chunk_tokens: int = 1024,
    temperature: float = 1.0,
    prefix: Prefix | None = None,
) -> dict[str, Tensor]:
    """logp[b, t] = log p(input_ids[b, t] | input_ids[b, :t]) where loss_mask[b, t], else 0.

    input_ids, attention_mask, loss_mask: [B, L] (loss_mask[:, 0] must be False). `temperature`
    divides the logits, so RL logprobs are those of the distribution the rollouts sampled from (the
    backends report behaviour logprobs after temperature). Returns a dict of [B, L] tensors: "logp"
    (with grad when enabled) and each requested statistic (detached). With `prefix` (shared-prefix
    batches, `prefix.pack_shared`), row b continues prefix `prefix.group[b]`: the condition includes
    that prefix, and loss_mask[:, 0] may be True (predicted from the prefix's last state).
    """
    mask = loss_mask.bool()
    if prefix is None:
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, L, H]
        rows = hidden[:, :-1][mask[:, 1:]]  # [N, H]: the state before each loss token
    else:
        last, hidden = shared_prefix_hidden(model, input_ids, attention_mask, prefix)  # [B, H], [B, L, H]
        rows = torch.cat([last[:, None], hidden[:, :-1]], dim=1)[mask]  # [N, H]: the state before each loss token
    head = model.get_output_embeddings()
    targets = input_ids[mask]  # [N]
    pieces: dict[str, list[Tensor]] = {"logp": [], **{s: [] for s in stats}}
    for lo in range(0, rows.shape[0], chunk_tokens):
        chunk = (rows[lo : lo + chunk_tokens], targets[lo : lo + chunk_tokens])
        if torch.is_grad_enabled():
            logp, *extra = checkpoint(_chunk, head, *chunk, stats, temperature, use_reentrant=False)
        else:
            logp, *extra = _chunk(head, *chunk, stats, temperature)
        pieces["logp"].append(logp)
        for name, value in zip(stats, extra):
            pieces[name].append(value)
    out = {}
    dtype = torch.promote_types(hidden.dtype, torch.float32)
    for name, values in pieces.items():
        full = torch.zeros(mask.shape, dtype=dtype, device=input_ids.device)
        flat = torch.cat(values).to(dtype) if values else full.new_zeros(0)
        out[name] = full.masked_scatter(mask, flat)
    return out


def _chunk(head: nn.Module, rows: Tensor, targets: Tensor, stats: tuple[str, ...], temperature: float) -> tuple[Tensor, ...]:
    result = token_stats(head(rows)[None] / temperature, targets[None], stats)  # [1, n, V] -> [1, n]
    return (result["logp"][0], *(result[s][0] for s in stats))
