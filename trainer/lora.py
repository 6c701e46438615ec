"""LoRA through peft: adapters on the policy, the initial policy without a copy, merged weights for the engine.

With `lora:` set in the config (`LoraSpec`), `add_adapters` puts peft's LoRA layers into the policy in
place (`peft.get_peft_model`) and freezes every base weight, so the optimizer holds the adapter
parameters alone (`train.make_optimizer` takes the parameters that require grad). The trainer keeps
running the transformers module itself (`trainer/logprobs.py` reads its `base_model` and LM head, which
the `PeftModel` wrapper would hide: its own `base_model` is peft's tuner); the `PeftModel` that
`add_adapters` returns does what only it can:

- the initial policy: `InitialPolicy` runs the same module with its adapters switched off
  (`PeftModel.disable_adapter`), so the KL to the initial model (`grpo/kl_ref`, `kl_coef`) needs no
  frozen copy of the weights;
- checkpoints: `PeftModel.save_pretrained` writes the adapter alone (`adapter_model.safetensors` and
  `adapter_config.json`: ~20 MB at rank 16 on SmolLM2-135M, whose fp32 weights take ~517 MB), and
  `load_adapter` reads it back when a run resumes (`trainer/checkpoint.py`);
- the final model: `merged_model` folds the adapters into the base weights (`merge_and_unload`), so
  the run's `final/` folder is a plain transformers model that loads without peft.

Rollout engine: merged weights. `agents/weight_sync.py` sends an adapted model as W + (alpha / r) B A
for every adapted layer, under the Hugging Face names, computed without touching the module
(`weight_sync.merged_state_dict`; merging in place and unmerging after each sync would round the base
weights a little every step), through the same in-place sync as full fine-tuning, and the same
logprob-parity probe checks it after every sync (docs/platform.md, "Weight sync in place").

The alternative, serving the adapter through vLLM's LoRA support (an engine started with
`enable_lora` and a fixed `max_lora_rank`, a new `LoRARequest` per step), moves only the adapter at
each sync, but samples through separate LoRA kernels: every decode step pays for them, and the
engine's logprobs are no longer those of one weight matrix, so parity with the trainer is looser. Merged weights keep the engine and its parity check exactly as verified
for full fine-tuning and generation at full speed; the price is a full-weight sync per step, the same
as full fine-tuning pays.

The learning rate: LoRA's best rate is about 10x full fine-tuning's (Schulman et al., "LoRA Without
Regret", Thinking Machines Lab, 2025), and LoRA on all linear layers ("all-linear", the default here)
is the setting that matched full fine-tuning there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

INSTALL_HINT = 'LoRA needs peft: pip install -e ".[lora]" (peft 0.21.0)'
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class LoraSpec:
    """The adapters `add_adapters` puts on the policy (peft's `LoraConfig` under the names used here)."""

    rank: int = 16
    """r, the rank of each adapter's B A"""
    alpha: float = 32.0
    """lora_alpha: the update is scaled by alpha / rank"""
    dropout: float = 0.0
    """dropout on the adapters' input in training forward passes (0: the trainer's logprobs are those
    the engine samples with)"""
    target_modules: str = "all-linear"
    """the layers that get adapters: "all-linear" (peft: every linear layer but the output layer) or a
    regular expression that the whole module name must match, e.g. `.*\\.(q_proj|v_proj)`"""


def add_adapters(model: nn.Module, spec: LoraSpec) -> Any:
    """Put LoRA adapters on `model` in place and freeze its base weights; returns the `PeftModel` around it.

    Raises ImportError (how to install peft) without peft, and ValueError when the adapters would
    reach an output layer tied to the input embedding (the sync leaves a tied head out)."""
    try:
        from peft import LoraConfig, get_peft_model
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.target_modules,
                        task_type="CAUSAL_LM")
    adapted = get_peft_model(model, config)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    if tied and isinstance(model.get_output_embeddings(), BaseTunerLayer):
        raise ValueError(f"lora.target_modules {spec.target_modules!r} adapts the output layer, which is tied to the embedding")
    return adapted


class _AdaptersOff:
    """`module` (its attributes read through), called with the adapters of `adapted` switched off."""

    def __init__(self, adapted: Any, module: nn.Module):
        self._adapted, self._module = adapted, module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._adapted.disable_adapter():
            return self._module(*args, **kwargs)


class InitialPolicy:
    """The policy as it started, for `token_logprobs`: the adapted module's decoder stack and LM head,
    run with the adapters off (the base weights never change under LoRA)."""

    def __init__(self, adapted: Any):
        model = adapted.get_base_model()
        self.base_model = _AdaptersOff(adapted, model.base_model)
        self._head = _AdaptersOff(adapted, model.get_output_embeddings())

    def get_output_embeddings(self) -> _AdaptersOff:
        return self._head


def load_adapter(adapted: Any, folder: str | Path) -> None:
    """Load the adapter weights that `adapted.save_pretrained(folder)` wrote back into `adapted`; raises
    ValueError if they do not fit its adapters."""
    from peft import set_peft_model_state_dict
    from peft.tuners.lora import LoraLayer
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(adapted, load_file(Path(folder) / ADAPTER_WEIGHTS))
    parts = tuple(f".{part}." for part in LoraLayer.adapter_layer_names)
    missing = [k for k in result.missing_keys if any(part in k for part in parts)]
    if missing or result.unexpected_keys:
        raise ValueError(f"adapter {folder}: does not fit the model's adapters: missing {missing}, extra {result.unexpected_keys}")


def merged_model(adapted: Any) -> nn.Module:
    """The transformers model with the adapters folded into its weights and removed (peft's
    `merge_and_unload`): saved, it loads without peft. Changes the module in place: for the end of a run."""
    return adapted.merge_and_unload()
