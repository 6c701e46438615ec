"""The policy-backend protocol: token-id prompts in; sampled token ids, their logprobs and a finish reason out.

Every backend (vLLM offline, an OpenAI-compatible server, transformers `generate`) implements
`Backend`. Prompts are token ids, never text, so the ids a trainer later trains on are exactly the
ids the engine saw and sampled (no re-tokenization anywhere on the rollout path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Sequence

import torch


@dataclass
class SamplingParams:
    """How to sample. `stop_token_ids` end a completion (the token is included in the output);
    `seed` makes sampling reproducible where the backend allows it; `n` completions per prompt;
    `ignore_eos` samples all `max_tokens` tokens past the model's end of sequence (the stop tokens
    still stop), as the parity probe needs: a model that ends its turn at once would compare nothing."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    n: int = 1
    ignore_eos: bool = False


@dataclass
class Completion:
    """One sampled continuation: its token ids, the behaviour logprob of each, and why it ended
    ("stop": a stop token or end of sequence, included in `token_ids`; "length": `max_tokens` or the
    context window was reached)."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: Literal["stop", "length"]


class Backend(Protocol):
    """A policy that samples continuations of token-id prompts."""

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in prompt order; one batch call."""
        ...

    def update_weights(self, model: torch.nn.Module) -> None:
        """Make the backend sample from `model`'s current weights (after a training step)."""
        ...

    def close(self) -> None:
        """Free the engine's resources."""
        ...


def open_backend(model: str | torch.nn.Module, kind: str = "auto", /, **options: object) -> Backend:
    """A backend by name: "vllm" (a model folder), "hf" (a folder, or a module to share: training
    and sampling then use the same weights), "openai" (a server's base URL instead of a folder,
    with `model=` the served name), or "auto" (vLLM where it is installed, else HF)."""
    import importlib.util

    if kind == "auto":
        kind = "vllm" if isinstance(model, (str, Path)) and importlib.util.find_spec("vllm") is not None else "hf"
    if kind == "vllm":
        from chord_env.agents.vllm_backend import VLLMBackend

        return VLLMBackend(model, **options)
    if kind == "hf":
        from chord_env.agents.hf_backend import HFBackend

        return HFBackend(model, **options)
    if kind == "openai":
        from chord_env.agents.openai_backend import OpenAIBackend

        return OpenAIBackend(str(model), **options)
    raise ValueError(f"unknown backend {kind!r}; choose 'vllm', 'hf', 'openai' or 'auto'")
