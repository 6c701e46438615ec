"""The TRL bridge against TRL 1.16 itself: the dataset is in TRL's conversational format, the reward
function, called as GRPOTrainer calls it, scores completions by playing them through the env, and
one GRPOTrainer step trains the tiny model on an env's tasks with the env's reward."""

from __future__ import annotations

from typing import Any

import pytest

import chord_env
from chord_env.bridges.trl_grpo import env_reward, grpo_dataset
from chord_env.parsing import parse_hermes

trl = pytest.importorskip("trl", reason="TRL is in the bridges extra: pip install -e '.[bridges]'")


def _expert_turns(env_id: str, seed: int) -> list[str]:
    env = chord_env.make(env_id)
    env.reset(seed=seed)
    return env.unwrapped.expert_actions()


def _as_trl_completion(turns: list[str]) -> list[dict[str, Any]]:
    """Expert turns as TRL's tool loop writes a completion: structured calls (arguments as a dict),
    then a tool message per call (TRL's own results, which the env replaces with its own)."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        parsed = parse_hermes(turn)
        message: dict[str, Any] = {"role": "assistant", "content": parsed.content}
        if parsed.calls:
            message["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                     for c in parsed.calls]
        messages.append(message)
        messages += [{"role": "tool", "name": c.name, "content": "whatever TRL computed"} for c in parsed.calls]
    return messages


def _call_as_grpo_trainer(reward, prompts, completions, seeds) -> list[float]:
    """The keyword arguments GRPOTrainer._calculate_rewards passes to a reward function."""
    return reward(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(completions),
                  chord_seed=seeds, trainer_state=None, log_extra=lambda *a: None, log_metric=lambda *a: None)


def test_dataset_is_trl_conversational_and_names_the_task_by_seed():
    from trl.data_utils import is_conversational

    dataset = grpo_dataset("chord/Calculator-v0", 3, seed=7)
    assert dataset.column_names == ["prompt", "chord_seed"] and dataset["chord_seed"] == [7, 8, 9]
    assert all(is_conversational(row) for row in dataset)
    env = chord_env.make("chord/Calculator-v0")
    opening, _ = env.reset(seed=8)
    assert dataset[1]["prompt"] == [m.to_openai() for m in opening]


def test_reward_plays_multi_turn_tool_completions_through_the_env():
    prompts = list(grpo_dataset("chord/Calculator-v0", 2, seed=3)["prompt"])
    reward = env_reward("chord/Calculator-v0")
    expert = [_as_trl_completion(_expert_turns("chord/Calculator-v0", s)) for s in (3, 4)]
    wrong = _as_trl_completion(_expert_turns("chord/Calculator-v0", 3)[:1]) + [
        {"role": "assistant", "content": "The answer is 1."}]
    no_answer = expert[0][:2]  # a call and its result, then nothing: the episode never ends
    seeds = [3, 4, 3, 3]
    rewards = _call_as_grpo_trainer(reward, prompts + prompts[:1] * 2,
                                    expert + [wrong, no_answer], seeds)
    assert rewards == pytest.approx([1.1, 1.1, 0.1, 0.0])  # answer 1.0 + format 0.1; format only; cut
    assert reward.__name__ == "chord_Calculator-v0"


def test_reward_scores_plain_text_completions_with_the_env_reward():
    reward = env_reward("chord/Arithmetic-v0")
    right = _expert_turns("chord/Arithmetic-v0", 5)[0]
    completions = [[{"role": "assistant", "content": right}], [{"role": "assistant", "content": "$\\boxed{-1}$"}], right]
    assert _call_as_grpo_trainer(reward, [None] * 3, completions, [5, 5, 5]) == [1.0, 0.0, 1.0]


@pytest.mark.slow
def test_one_grpo_trainer_step_on_an_env(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = GRPOConfig(output_dir=str(tmp_path), report_to="none", max_steps=1, per_device_train_batch_size=2,
                      num_generations=2, max_completion_length=8, logging_steps=1, save_strategy="no", use_cpu=True)
    reward = env_reward("chord/Arithmetic-v0")
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, processing_class=tokenizer,
                          train_dataset=grpo_dataset("chord/Arithmetic-v0", 4))
    trainer.train()
    logged = trainer.state.log_history[0]
    assert trainer.state.global_step == 1
    assert 0.0 <= logged[f"rewards/{reward.__name__}/mean"] <= 1.0  # the env's reward, computed inside the trainer
