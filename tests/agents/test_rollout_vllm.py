"""The runner over the real vLLM engine: across several turns with tool outputs in between, the ids
stored for training are exactly the ids the engine sampled, with the engine's logprobs."""

import pytest
from transformers import AutoTokenizer

from chord_env.bench.rollout import ThreeTurns
from chord_env.agents.runner import RolloutConfig, rollout
from chord_env.chat import ChatRenderer


class Recording:
    """Wraps a backend and keeps every completion it returned."""

    def __init__(self, inner):
        self.inner = inner
        self.completions = []

    def generate(self, prompts, params):
        out = self.inner.generate(prompts, params)
        self.completions += [c for group in out for c in group]
        return out


def check_token_exact(backend, trajectories):
    sampled = sorted((tuple(c.token_ids), tuple(c.logprobs)) for c in backend.completions)
    stored = sorted(
        (tuple(t.token_ids[turn.start : turn.end]), tuple(t.logprobs[turn.start : turn.end])) for t in trajectories for turn in t.turns
    )
    assert stored == sampled
    for t in trajectories:
        assert [i for i, m in enumerate(t.loss_mask) if m] == [i for turn in t.turns for i in range(turn.start, turn.end)]


def run(backend, model_dir, stop_ids, max_turn_tokens):
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(model_dir))
    config = RolloutConfig(group_size=2, max_turn_tokens=max_turn_tokens, max_context=1024)
    return list(rollout(backend, ThreeTurns, renderer, [0, 1, 2], config, stop_ids, progress=False))


def test_multi_turn_ids_are_the_sampled_ids(tiny_vllm, tiny_model_dir):
    backend = Recording(tiny_vllm)
    # a random model almost never samples <|im_end|>: stop on a seventh of the vocabulary instead, so
    # turns end within a few tokens and every episode runs its three turns
    trajectories = run(backend, tiny_model_dir, list(range(0, 49152, 7)), max_turn_tokens=48)
    assert sum(len(t.turns) == 3 for t in trajectories) >= 4
    check_token_exact(backend, trajectories)


@pytest.mark.slow
def test_smollm2_multi_turn_episode(smollm2_model_dir):
    from chord_env.agents.vllm_backend import VLLMBackend

    tokenizer = AutoTokenizer.from_pretrained(smollm2_model_dir)
    stop_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id]
    with VLLMBackend(smollm2_model_dir, max_model_len=1024, kv_cache_gib=0.5) as engine:
        backend = Recording(engine)
        trajectories = run(backend, smollm2_model_dir, stop_ids, max_turn_tokens=96)
    assert any(len(t.turns) == 3 for t in trajectories), [t.truncation for t in trajectories]
    check_token_exact(backend, trajectories)
