"""The rollout runner with a scripted backend: multi-turn flow, token exactness, every way to stop.

The scripted backend is a real `Backend` that answers like a competent calculator agent by reading
the prompt ids it is given, so these tests check the runner's bookkeeping independent of any model.
The same runner over the real vLLM engine is tested in test_rollout_vllm.py.
"""

import re

import pytest

import chord_env
from chord_env.agents.backend import Completion, SamplingParams
from chord_env.agents.runner import RolloutConfig, rollout
from chord_env.chat import ChatRenderer
from chord_env.parsing import format_hermes
from chord_env.types import ToolCall


class ScriptedBackend:
    """Calls the calculator on the question, then states the tool's result; records what it sampled."""

    def __init__(self, tokenizer, end_of_turn=True, turn_tokens=None):
        self.tokenizer = tokenizer
        self.im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.end_of_turn = end_of_turn
        self.turn_tokens = turn_tokens
        self.sampled: list[list[int]] = []
        self.batch_sizes: list[int] = []

    def reply(self, prompt: str) -> str:
        results = re.findall(r"<tool_response>\n(.*?)\n</tool_response>", prompt, re.S)
        if results:
            return f"The answer is {results[-1]}."
        question = re.findall(r"What is (.*?)\? Use the calculator", prompt)[-1]
        return format_hermes([ToolCall("calculator", {"expression": question})])

    def generate(self, prompts, params: SamplingParams):
        self.batch_sizes.append(len(prompts))
        out = []
        for prompt in prompts:
            ids = self.tokenizer(self.reply(self.tokenizer.decode(prompt)), add_special_tokens=False)["input_ids"]
            ids = ids + [self.im_end] if self.end_of_turn else ids * 50
            reason = "stop"
            if len(ids) > params.max_tokens:
                ids, reason = ids[: params.max_tokens], "length"
            self.sampled.append(ids)
            out.append([Completion(ids, [-0.25] * len(ids), reason)])
        return out

    def update_weights(self, model):
        pass

    def close(self):
        pass


@pytest.fixture()
def renderer(smollm2_tokenizer):
    return ChatRenderer(smollm2_tokenizer)


def run(backend, renderer, seeds=(1, 2, 3), make_env=lambda: chord_env.make("chord/Calculator-v0"), **config):
    config = RolloutConfig(**{"group_size": 2, **config})
    return list(rollout(backend, make_env, renderer, list(seeds), config, [backend.im_end], progress=False))


def test_multi_turn_episodes_are_token_exact(smollm2_tokenizer, renderer):
    backend = ScriptedBackend(smollm2_tokenizer)
    trajs = run(backend, renderer)
    assert len(trajs) == 6 and all(t.reward == pytest.approx(1.1) for t in trajs), [t.reward for t in trajs]
    sampled = iter(backend.sampled)
    spans = []
    for t in trajs:
        assert len(t.turns) == 2 and t.truncation is None
        for turn in t.turns:
            spans.append(t.token_ids[turn.start : turn.end])
        mask_positions = [i for i, m in enumerate(t.loss_mask) if m]
        assert mask_positions == [i for turn in t.turns for i in range(turn.start, turn.end)]
        assert all(t.logprobs[i] == -0.25 for i in mask_positions)
        assert all(t.logprobs[i] == 0.0 for i, m in enumerate(t.loss_mask) if not m)
        assert t.turns[0].info["tool_calls"][0]["name"] == "calculator"
        # the observation between the turns is exactly the template's rendering of the tool reply
        between = t.token_ids[t.turns[0].end : t.turns[1].start]
        assert smollm2_tokenizer.decode(between).startswith("\n<|im_start|>tool\n<tool_response>")
    assert sorted(map(tuple, spans)) == sorted(map(tuple, sampled))


def test_groups_share_their_task(smollm2_tokenizer, renderer):
    trajs = run(ScriptedBackend(smollm2_tokenizer), renderer, group_size=3)
    by_group = {}
    for t in trajs:
        by_group.setdefault(t.group_id, set()).add(t.task_id)
    assert set(by_group) == {"1", "2", "3"} and all(len(ids) == 1 for ids in by_group.values())


def test_concurrency_bounds_the_batch(smollm2_tokenizer, renderer):
    backend = ScriptedBackend(smollm2_tokenizer)
    trajs = run(backend, renderer, seeds=range(5), concurrency=3)
    assert len(trajs) == 10 and max(backend.batch_sizes) == 3


def test_a_turn_that_never_ends_is_cut_and_scored_by_the_env(smollm2_tokenizer, renderer):
    trajs = run(ScriptedBackend(smollm2_tokenizer, end_of_turn=False), renderer, max_turn_tokens=40, truncation_reward=-1.0)
    assert all(t.truncation == "length" and len(t.turns) == 1 for t in trajs)
    assert all(sum(t.loss_mask) == 40 for t in trajs)
    # the cut text is a tool call (broken or whole), not a final answer: the env's step reward is 0,
    # not the runner's truncation_reward
    assert all(t.reward == 0.0 for t in trajs)


@pytest.mark.parametrize(
    "max_context, truncation, turns",
    [(300, "context", 0), (350, "length", 1), (380, "context", 1), (420, None, 2)],  # the prompt is 316 tokens
)
def test_context_limit_truncates(smollm2_tokenizer, renderer, max_context, truncation, turns):
    trajs = run(ScriptedBackend(smollm2_tokenizer), renderer, max_context=max_context)
    assert all(t.truncation == truncation and len(t.turns) == turns for t in trajs)
    assert all(len(t.token_ids) <= max(max_context, t.prompt_length) for t in trajs)
    assert all(t.reward == pytest.approx(1.1 if truncation is None else 0.0) for t in trajs)


class ExplodingEnv:
    """Wraps a real env and raises on the second step."""

    def __init__(self):
        self.env = chord_env.make("chord/Calculator-v0")
        self.steps = 0

    def reset(self, **kw):
        return self.env.reset(**kw)

    def step(self, action):
        self.steps += 1
        if self.steps == 2:
            raise RuntimeError("env bug")
        return self.env.step(action)

    def close(self):
        self.env.close()


def test_an_env_that_raises_ends_only_its_episode(smollm2_tokenizer, renderer):
    trajs = run(ScriptedBackend(smollm2_tokenizer), renderer, make_env=ExplodingEnv)
    assert all(t.truncation == "env_error" and "env bug" in t.info["error"] for t in trajs)
    assert all(len(t.turns) == 2 for t in trajs)
