"""`HFBackend`: transformers `generate` behind the `Backend` protocol, for machines without vLLM.

Token-in/token-out like `VLLMBackend`: prompts are token ids (left-padded into one batch with an
attention mask), outputs are the sampled ids. The behaviour logprob of each sampled token is the
log-softmax of `generate`'s processed scores (`output_scores=True`: the logits after temperature and
top-p), i.e. the distribution actually sampled from, the same definition as `VLLMBackend`'s
`logprobs_mode="processed_logprobs"`; greedy (temperature 0) gives the raw log-softmax. A
completion ends at the model's EOS (from `generation_config`) or any of `stop_token_ids`; that
token is kept as its last id. `top_k` is switched off explicitly (transformers' default config
would otherwise apply top_k=50).

Seeding: a call with `SamplingParams.seed` samples under `torch.manual_seed(seed)`; otherwise
under `seed + number of earlier calls`, so a fresh backend replays the same samples for the same
calls. The global RNG state is restored afterwards. Results are not bitwise equal to vLLM's samples.

What it does not do: continuous batching (a batch runs until its longest member stops, so it is
far slower than vLLM for rollouts), or per-prompt context budgets: all prompts of a batch get
`min(max_tokens, max_model_len - longest prompt)` new tokens at most; a prompt of `max_model_len`
tokens or more gets an empty "length" completion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from chord_env.agents.backend import Capabilities, Completion, SamplingParams
from chord_env.models import check_model_dir


def _id_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


class HFBackend:
    """A `Backend` over a transformers causal LM (a folder to load, or a module to share)."""

    capabilities = Capabilities(shares_weights=True, syncs_weights=True, per_request_seeds=True, checks_parity=False, remote=False)

    def __init__(
        self,
        model_or_dir: torch.nn.Module | str | Path,
        *,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        seed: int = 0,
        max_model_len: int = 2048,
        batch_size: int = 64,
    ):
        if isinstance(model_or_dir, (str, Path)):
            from transformers import AutoModelForCausalLM

            check_model_dir(model_or_dir)
            model = AutoModelForCausalLM.from_pretrained(model_or_dir, dtype=dtype or "auto")
        else:
            model = model_or_dir if dtype is None else model_or_dir.to(dtype)
        if device is not None:
            model = model.to(device)
        self.model = model
        self.seed = seed
        self.calls = 0
        self.max_model_len = max_model_len
        self.batch_size = batch_size
        config = model.generation_config
        self.eos_ids = _id_list(config.eos_token_id) or _id_list(model.config.eos_token_id)
        self.pad_id = (_id_list(config.pad_token_id) or self.eos_ids or [0])[0]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions per prompt, in prompt order (batches of `batch_size` sequences)."""
        seed = params.seed if params.seed is not None else self.seed + self.calls
        self.calls += 1
        results: list[list[Completion]] = [
            [Completion([], [], "length") for _ in range(params.n)] for _ in prompts
        ]
        fits = [i for i, p in enumerate(prompts) if 0 < len(p) < self.max_model_len]
        per_batch = max(1, self.batch_size // max(1, params.n))
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for start in range(0, len(fits), per_batch):
                chunk = fits[start : start + per_batch]
                for i, completions in zip(chunk, self._generate_batch([prompts[i] for i in chunk], params)):
                    results[i] = completions
        return results

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        from transformers import GenerationConfig

        width = max(len(p) for p in prompts)
        budget = min(params.max_tokens, self.max_model_len - width)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        stops = (set() if params.ignore_eos else set(self.eos_ids)) | set(params.stop_token_ids)
        greedy = params.temperature <= 0
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_p=None if greedy else params.top_p,
            top_k=None if greedy else 0,
            max_new_tokens=budget,
            num_return_sequences=params.n,
            eos_token_id=sorted(stops),
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_scores=True,
        )
        out = self.model.generate(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), generation_config=config
        )
        new = out.sequences[:, width:].tolist()
        logprobs = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in out.scores], dim=1)
        picked = logprobs.gather(-1, out.sequences[:, width:, None].to(logprobs.device))[..., 0].tolist()
        completions = []
        for row, tokens in enumerate(new):
            end = next((t + 1 for t, token in enumerate(tokens) if token in stops), None)
            cut = len(tokens) if end is None else end
            reason = "length" if end is None else "stop"
            completions.append(Completion(tokens[:cut], picked[row][:cut], reason))
        return [completions[k * params.n : (k + 1) * params.n] for k in range(len(prompts))]

    def update_weights(self, model: torch.nn.Module) -> None:
        """Copy `model`'s weights in (nothing to do when the backend shares that module)."""
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())

    def close(self) -> None:
        """Drop the model reference."""
        self.model = None
