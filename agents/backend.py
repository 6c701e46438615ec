"""The policy-backend protocol: token-id prompts in; sampled token ids, their logprobs and a finish reason out.

Every backend (vLLM offline, an OpenAI-compatible server, transformers `generate`) implements
`Backend`. Prompts are token ids, never text, so the ids a trainer later trains on are exactly the
ids the engine saw and sampled (no re-tokenization anywhere on the rollout path).

Each backend class declares what it can do as a `Capabilities` class attribute, and callers (the
trainer, `chord-env rollout`) ask those instead of branching on backend names. Backends are found by
name in `BACKENDS`; adding one means writing its module (a class with `generate`, `update_weights`,
`close` and `capabilities`, taking the model as its first argument and `max_model_len` and `seed`
as keywords) and adding one entry there, or calling `register_backend` from outside the package.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, Sequence

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class Capabilities:
    """What a backend class can do; the trainer's choices follow from these, never from its name."""

    shares_weights: bool = False
    """Opened on the trainer's module itself (not a folder), it samples from those very weights, so a
    sync costs nothing and cannot drift."""
    syncs_weights: bool = False
    """`update_weights` puts new weights in place, so it can serve a training run (one that cannot is
    for sampling and evaluation only)."""
    per_request_seeds: bool = False
    """Every `SamplingParams.seed` is honoured on every platform, so the trainer seeds each step's
    rollouts (a resumed run then samples what an uninterrupted one did); otherwise the backend's own
    seed governs its sampling."""
    checks_parity: bool = False
    """It holds its own copy of the weights, which a sync can get wrong: after each sync the trainer
    compares its logprobs with the trainer's (`weight_sync.logprob_parity`)."""
    remote: bool = False
    """Opened on a server's base URL, with `model=` the served name and `api_key=`, instead of on a
    model folder; the prompts' tokenizer and chat template then come from a folder of their own."""


class Backend(Protocol):
    """A policy that samples continuations of token-id prompts."""

    capabilities: Capabilities

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in prompt order; one batch call."""
        ...

    def update_weights(self, model: torch.nn.Module) -> None:
        """Make the backend sample from `model`'s current weights (after a training step)."""
        ...

    def close(self) -> None:
        """Free the engine's resources."""
        ...


BACKENDS: dict[str, str | type] = {
    "vllm": "chord_env.agents.vllm_backend:VLLMBackend",
    "hf": "chord_env.agents.hf_backend:HFBackend",
    "openai": "chord_env.agents.openai_backend:OpenAIBackend",
    "remote-vllm": "chord_env.agents.remote_vllm_backend:RemoteVLLMBackend",
}
"""Backend classes by name: a class, or "module:Class" (imported when first asked for, so naming a
backend never imports its engine, and this module imports no torch: the CLI lists the names)."""


def register_backend(name: str, backend: str | type) -> None:
    """Make `backend` (a class, or "module:Class") available as `name` to `open_backend`, the CLI and
    the trainer's `backend=` setting."""
    if name == "auto":
        raise ValueError('"auto" is not a backend name: it picks one')
    BACKENDS[name] = backend


def backend_class(name: str) -> type:
    """The class registered as `name`."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {sorted(BACKENDS)} or 'auto'")
    target = BACKENDS[name]
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
    return target


def capabilities(name: str) -> Capabilities:
    """What the backend registered as `name` can do."""
    return backend_class(name).capabilities


def trainable_backends() -> list[str]:
    """The registered backends a training run can use: those that take new weights."""
    return sorted(name for name in BACKENDS if capabilities(name).syncs_weights)


def open_backend(model: str | Path | torch.nn.Module, kind: str = "auto", /, **options: Any) -> Backend:
    """A backend by its registered name (`BACKENDS`), opened on `model`: a model folder, a module
    (for a backend that `shares_weights`), or a server's base URL ("openai", with `model=` the served
    name). "auto" is vLLM where it is installed and `model` is a folder, else HF."""
    if kind == "auto":
        kind = "vllm" if isinstance(model, (str, Path)) and importlib.util.find_spec("vllm") is not None else "hf"
    return backend_class(kind)(model, **options)
