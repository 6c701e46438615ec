"""`chord-env rollout`: sample trajectories of an env with a model and write them as JSON lines.

The file is written whole at the end (to a temporary name, then renamed), so an interrupted run never
leaves a half-written file that looks complete. It is what the trainer reads, and it loads with
`datasets.load_dataset("json", data_files=...)`.

The model is a folder for a local backend, or, for a `remote` one ("openai": a vLLM server's
`/completions` with its token-id extensions), the name a server at `base_url` serves, whose prompts
are rendered with the tokenizer and chat template of the folder `tokenizer`: trajectories are token
ids, so a server reachable only through chat completions cannot be rolled out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import chord_env
from chord_env.agents.backend import capabilities, open_backend
from chord_env.agents.runner import RolloutConfig, rollout
from chord_env.chat import ChatRenderer
from chord_env.models import check_model_dir
from chord_env.types import write_jsonl


@dataclass
class RolloutSummary:
    path: Path
    trajectories: int
    mean_reward: float
    sampled_tokens: int
    seconds: float

    def __str__(self) -> str:
        return (f"{self.trajectories} trajectories -> {self.path}; mean reward {self.mean_reward:.3f}; "
                f"{self.sampled_tokens} sampled tokens in {self.seconds:.1f} s ({self.sampled_tokens / self.seconds:.0f} tokens/s)")


def collect(env_id: str, model_dir: str, out: str | Path, num_tasks: int, group: int, backend: str = "vllm",
            temperature: float = 1.0, max_turn_tokens: int = 256, max_context: int = 2048, seed: int = 0,
            base_url: str | None = None, api_key: str | None = None, tokenizer: str | None = None) -> RolloutSummary:
    """Roll out `num_tasks` tasks (seeds `seed`..`seed + num_tasks - 1`) x `group` samples each, with
    the model folder `model_dir`, or with a remote backend the served model `model_dir` at `base_url`
    prompted through the folder `tokenizer` (module docstring)."""
    from transformers import AutoTokenizer

    remote = capabilities(backend).remote
    if remote and (base_url is None or tokenizer is None):
        raise ValueError(f"backend {backend!r} needs a base URL and a tokenizer folder (the served model's tokenizer and chat template)")
    if not remote and base_url is not None:
        raise ValueError(f"backend {backend!r} runs a model folder and takes no base URL")
    if not remote:
        check_model_dir(model_dir)
    chord_env.make(env_id).close()  # an unknown env fails here, before the engine starts
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(tokenizer or model_dir))
    if remote:
        engine = open_backend(base_url, backend, model=model_dir, api_key=api_key, max_model_len=max_context)
    else:
        engine = open_backend(model_dir, backend, max_model_len=max_context)
    config = RolloutConfig(group_size=group, temperature=temperature, max_turn_tokens=max_turn_tokens, max_context=max_context)
    stop_ids = renderer.stop_token_ids()
    began = time.perf_counter()
    try:
        trajectories = list(rollout(engine, lambda: chord_env.make(env_id), renderer, list(range(seed, seed + num_tasks)), config, stop_ids))
    finally:
        engine.close()
    seconds = time.perf_counter() - began
    write_jsonl(out, trajectories)
    return RolloutSummary(
        path=Path(out),
        trajectories=len(trajectories),
        mean_reward=sum(t.reward for t in trajectories) / max(len(trajectories), 1),
        sampled_tokens=sum(sum(t.loss_mask) for t in trajectories),
        seconds=seconds,
    )
