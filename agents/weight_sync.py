"""Weight sync helpers on the trainer's side, and the logprob-parity check every sync path must pass.

- `sync_state_dict(model)`: the tensors to send, under Hugging Face checkpoint names, with a tied
  `lm_head.weight` left out (it is the embedding; safetensors also refuses shared tensors). A model
  with peft LoRA adapters (`trainer/lora.py`) sends merged weights (`merged_state_dict`), so the
  engine runs a plain model.
- `save_weights(model, path)`: that state dict as one safetensors file.
- `reference_logprobs(model, prompt, completion, temperature)`: transformers' logprob of each
  completion token, fp32, under softmax(logits / temperature) (no top-p).
- `logprob_parity(backend, model, probes)`: sample a fixed probe batch from the backend at
  temperature 1 and return the max |backend logprob - transformers logprob| of the sampled tokens.
  The default probes include a ~400-token prompt, so a prefix cache that still holds old-weight KV
  after a sync shows up (0.03 drift was seen on a 339-token prompt without `reset_prefix_cache`;
  `prompt_logprobs` probes would not show it; docs/platform.md, "Weight sync in place").
- `sync_seconds(backend, model)`: wall seconds of one `backend.update_weights(model)`.

Parity is a check of the sync, not of sampling: it compares logprobs of the tokens the backend
chose, so it does not detect a sampler that draws from the wrong distribution.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from chord_env.agents.backend import Backend, SamplingParams


def is_tied(model: torch.nn.Module) -> bool:
    """Whether `model`'s output layer shares its weight with the input embedding."""
    config = getattr(model, "config", None)
    return bool(getattr(config, "tie_word_embeddings", False))


def has_adapters(model: torch.nn.Module) -> bool:
    """Whether `model` holds peft adapter layers (never true while peft has not been imported)."""
    if "peft" not in sys.modules:
        return False
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


@torch.no_grad()
def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s weights with every active LoRA adapter folded in (W + scale * B A, peft's
    `get_delta_weight`), under the names of the model without adapters; the module is not changed."""
    from peft.tuners.lora import LoraLayer

    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    adapter_parts = tuple(f".{part}." for part in LoraLayer.adapter_layer_names)
    out = {}
    for key, tensor in model.state_dict().items():
        if any(part in key for part in adapter_parts):
            continue
        owner, _, leaf = key.rpartition(".base_layer.")
        layer = layers.get(owner)
        if layer is not None and leaf == "weight" and not layer.merged and not layer.disable_adapters:
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A or adapter in layer.lora_embedding_A:
                    tensor = tensor + layer.get_delta_weight(adapter)
        out[key.replace(".base_layer.", ".")] = tensor
    return out


def sync_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s weights (LoRA adapters merged in) as contiguous CPU tensors, minus a tied `lm_head.weight`."""
    skip = {"lm_head.weight"} if is_tied(model) else set()
    state = merged_state_dict(model) if has_adapters(model) else model.state_dict()
    return {name: tensor.detach().to("cpu").contiguous() for name, tensor in state.items() if name not in skip}


def save_weights(model: torch.nn.Module, path: str | Path) -> Path:
    """Write `sync_state_dict(model)` to the safetensors file `path`."""
    from safetensors.torch import save_file

    save_file(sync_state_dict(model), str(path))
    return Path(path)


def default_probes(vocab_size: int, seed: int = 0, lengths: Sequence[int] = (7, 48, 400)) -> list[list[int]]:
    """Fixed probe prompts: seeded random token ids (avoiding the first 16 ids, where special
    tokens live), one prompt per entry of `lengths`."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(16, vocab_size, (n,), generator=generator).tolist() for n in lengths]


@torch.no_grad()
def reference_logprobs(
    model: torch.nn.Module, prompt: Sequence[int], completion: Sequence[int], temperature: float = 1.0
) -> list[float]:
    """Logprob of each `completion` token after `prompt` under `model` in fp32, at `temperature`."""
    if not completion:
        return []
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt) + list(completion)], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    if temperature > 0:
        logits = logits / temperature
    logprobs = torch.log_softmax(logits, dim=-1)
    target = torch.tensor(list(completion), device=device)
    return logprobs.gather(-1, target[:, None])[:, 0].tolist()


def _fp32_eval(model: torch.nn.Module) -> torch.nn.Module:
    if all(p.dtype == torch.float32 for p in model.parameters()) and not model.training:
        return model
    return copy.deepcopy(model).float().eval()


def logprob_parity(
    backend: Backend,
    model: torch.nn.Module,
    probes: Sequence[list[int]] | None = None,
    max_tokens: int = 24,
) -> float:
    """Max |logprob difference| between `backend`'s sampled tokens and `model` (fp32) on `probes`
    (default `default_probes`), sampling `max_tokens` tokens per probe at temperature 1, top_p 1,
    past any end of sequence (a trained chat model may end its turn at once and leave nothing to
    compare; then this would read 0 whatever the weights)."""
    if probes is None:
        probes = default_probes(model.config.vocab_size)
    params = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=max_tokens, ignore_eos=True)
    completions = backend.generate(list(probes), params)
    reference = _fp32_eval(model)
    worst = 0.0
    for prompt, (completion,) in zip(probes, completions):
        expected = reference_logprobs(reference, prompt, completion.token_ids)
        for got, want in zip(completion.logprobs, expected):
            worst = max(worst, abs(got - want))
    return worst


def sync_seconds(backend: Any, model: torch.nn.Module) -> float:
    """Wall seconds of one `backend.update_weights(model)`."""
    start = time.perf_counter()
    backend.update_weights(model)
    return time.perf_counter() - start
