"""The TRL bridge against TRL 1.16 itself: the dataset is in TRL's conversational format; the reward
function, called as GRPOTrainer calls it, scores completions by playing them through the env; an
environment made by `environment_factory` answers the tool calls TRL's own response parser reads
from the model's text with the env's tool results, and its episode gives the reward; and one
GRPOTrainer step trains the tiny model on an env's tasks with the env's reward, with and without
environments."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import chord_env
from chord_env.bridges.trl_grpo import env_reward, environment_factory, grpo_dataset
from chord_env.chat import HERMES_TEMPLATE
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


def _call_as_grpo_trainer(reward, prompts, completions, seeds, **extra: Any) -> list[float]:
    """The keyword arguments GRPOTrainer._calculate_rewards passes to a reward function."""
    return reward(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(completions),
                  chord_seed=seeds, trainer_state=None, log_extra=lambda *a: None, log_metric=lambda *a: None, **extra)


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
    wrong = [{"role": "assistant", "content": "$\\boxed{-1}$"}]
    completions = [[{"role": "assistant", "content": right}], wrong, right]  # conversational, and standard (a str)
    assert _call_as_grpo_trainer(reward, [None] * 3, completions, [5, 5, 5]) == [1.0, 0.0, 1.0]


def test_environment_methods_are_the_env_tools_with_their_schemas():
    from transformers.utils import get_json_schema

    environment = environment_factory("chord/Calculator-v0")()
    tools = [m for name, m in inspect.getmembers(environment, inspect.ismethod)
             if not name.startswith("_") and name not in ("reset", "get_reward")]  # what GRPOTrainer takes for tools
    env = chord_env.make("chord/Calculator-v0")
    env.reset(seed=0)
    spec = env.unwrapped.tools["calculator"].spec
    assert [get_json_schema(m)["function"]["name"] for m in tools] == [spec.name]
    shown = get_json_schema(tools[0])["function"]  # what the chat template renders
    assert shown["description"].split() == spec.description.split()  # the same docstring text
    assert shown["parameters"] == {k: v for k, v in spec.parameters.items() if k != "additionalProperties"}


def test_a_tool_loop_episode_steps_the_env_and_earns_its_reward(smollm2_tokenizer, smollm2_cache):
    from transformers import AutoTokenizer
    from trl.chat_template_utils import parse_response, qwen3_template

    tokenizer = AutoTokenizer.from_pretrained(smollm2_cache)  # a copy: the session's tokenizer stays as it is
    tokenizer.response_template = qwen3_template  # Hermes `<tool_call>` parsing, as TRL sets it for Qwen3
    row = grpo_dataset("chord/Calculator-v0", 1, seed=3)[0]
    environment = environment_factory("chord/Calculator-v0")()
    environment.reset(**row)
    call_turn, answer_turn = _expert_turns("chord/Calculator-v0", 3)
    tools = [environment.calculator]
    prompt_ids = tokenizer.apply_chat_template(row["prompt"], tools=tools, chat_template=HERMES_TEMPLATE,
                                               add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    ids = tokenizer.encode(call_turn + "<|im_end|>", add_special_tokens=False)
    message = parse_response(tokenizer, ids, prefix=prompt_ids, tools=tools)  # as TRL's tool loop reads the turn
    call = message["tool_calls"][0]["function"]
    result = getattr(environment, call["name"])(**call["arguments"])  # as TRL's tool loop calls the tool
    assert result == "1094"  # the env's calculator on "813 + 94 + 187"
    completion = [message, {"role": "tool", "name": call["name"], "content": result},
                  {"role": "assistant", "content": answer_turn}]
    rewards = _call_as_grpo_trainer(env_reward("chord/Calculator-v0"), [row["prompt"]], [completion], [3],
                                    environments=[environment])
    assert rewards == pytest.approx([1.1])
    environment.reset(**row)
    unfinished = _call_as_grpo_trainer(env_reward("chord/Calculator-v0"), [row["prompt"]], [[message]], [3],
                                       environments=[environment])
    assert unfinished == [0.0]


def _grpo_step(model_dir, out_dir, env_id: str, **trainer_kwargs) -> dict[str, float]:
    """One GRPOTrainer step on two prompts of `env_id`, two completions each; its logged metrics."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen3_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template, tokenizer.response_template = HERMES_TEMPLATE, qwen3_template  # Hermes tool calls
    args = GRPOConfig(output_dir=str(out_dir), report_to="none", max_steps=1, per_device_train_batch_size=2,
                      num_generations=2, max_completion_length=8, logging_steps=1, save_strategy="no", use_cpu=True)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), reward_funcs=env_reward(env_id),
                          args=args, processing_class=tokenizer, train_dataset=grpo_dataset(env_id, 4),
                          **trainer_kwargs)
    trainer.train()
    assert trainer.state.global_step == 1
    return trainer.state.log_history[0]


@pytest.mark.slow
def test_one_grpo_trainer_step_on_an_env(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    logged = _grpo_step(tiny_model_dir, tmp_path, "chord/Arithmetic-v0")
    assert 0.0 <= logged["rewards/chord_Arithmetic-v0/mean"] <= 1.0  # MathEnv's reward, computed inside the trainer


@pytest.mark.slow
def test_one_grpo_trainer_step_with_environments(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    logged = _grpo_step(tiny_model_dir, tmp_path, "chord/Calculator-v0",
                        environment_factory=environment_factory("chord/Calculator-v0"))
    assert 0.0 <= logged["rewards/chord_Calculator-v0/mean"] <= 1.1  # answer (1.0) + format (0.1) at most
