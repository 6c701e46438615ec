"""MathEnv (math-verify in worker processes) and FunctionCallEnv (order-free call matching)."""

import threading

import pytest

from chord_env.envs import FunctionCallEnv, MathEnv, Task
from chord_env.envs.builtin import function_call_task
from chord_env.envs.function_call_env import values_equal
from chord_env.envs.math_verify_pool import VerifierPool
from chord_env.parsing import format_hermes
from chord_env.types import ToolCall

MATH_TASK = Task(prompt="What is 6 * 7?", answer="42")


@pytest.fixture(scope="module")
def math_env():
    env = MathEnv(tasks=[MATH_TASK])
    yield env
    env.close()


@pytest.mark.parametrize(
    "answer, reward",
    [("So the answer is $\\boxed{42}$.", 1.0), ("It is 42", 1.0), ("$\\boxed{41}$", 0.0), ("", 0.0), ("\\boxed{" * 50, 0.0), ("x" * 100_000, 0.0)],
)
def test_math_rewards(math_env, answer, reward):
    math_env.reset(seed=0)
    obs, r, terminated, truncated, info = math_env.step(answer)
    assert (r, terminated, truncated, obs) == (reward, True, False, [])


def test_math_verification_works_off_the_main_thread(math_env):
    results = []

    def worker():
        math_env.reset(seed=0)
        results.append(math_env.step("\\boxed{42}")[1])

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(60)
    assert results == [1.0]


def test_verifier_timeout_scores_zero_and_recovers():
    pool = VerifierPool(processes=1, timeout=1e-4)
    assert pool.score("42", "\\boxed{42}") == 0.0
    pool.timeout = 30.0
    assert pool.score("42", "\\boxed{42}") == 1.0
    assert pool.score_many([("1", "1"), ("2", "3")]) == [1.0, 0.0]
    pool.close()


def fc_env(calls, tools=()):
    return FunctionCallEnv(tasks=[Task(prompt="q", answer=calls, tools=list(tools))])


def reward_of(calls_expected, calls_given):
    env = fc_env(calls_expected)
    env.reset(seed=0)
    return env.step(format_hermes(calls_given))


def test_parallel_calls_match_in_any_order():
    a, b = ToolCall("w", {"city": "Oslo"}), ToolCall("w", {"city": "Lima", "unit": "celsius"})
    _, reward, terminated, _, info = reward_of([a, b], [b, a])
    assert reward == 1.0 and terminated and info["matched"] == 2
    assert reward_of([a, b], [a])[1] == 0.0
    assert reward_of([a], [a, b])[1] == 0.0
    assert reward_of([a], [ToolCall("w", {"city": "oslo"})])[1] == 0.0


def test_irrelevance_rewards_no_call():
    env = fc_env([])
    env.reset(seed=0)
    assert env.step("I cannot help with that using these tools.")[1] == 1.0
    env.reset(seed=0)
    assert env.step(format_hermes([ToolCall("w", {})]))[1] == 0.0


def test_broken_output_is_a_failed_case_not_a_crash():
    env = fc_env([ToolCall("w", {"city": "Oslo"})])
    for action in ["", '<tool_call>{"name": "w", "arguments": {"city": "Os', "x" * 100_000, format_hermes([ToolCall("other", {})])]:
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(action)
        assert reward == 0.0 and terminated


def test_values_compare_numbers_by_value():
    assert values_equal({"x": 3, "y": [1.0, "a"]}, {"x": 3.0, "y": [1, " a "]})
    assert not values_equal(True, 1) and not values_equal([1, 2], [2, 1]) and not values_equal({"x": 1}, {"x": 1, "y": 2})


def test_generated_function_call_tasks_are_solved_by_their_expert():
    env = FunctionCallEnv(tasks=function_call_task)
    for seed in range(40):
        env.reset(seed=seed)
        assert env.step(env.expert_actions()[0])[1] == 1.0


def test_optional_parameters_accept_omission_or_their_default():
    expected = [ToolCall("f", {"city": "Oslo"})]
    task = Task(prompt="q", answer=expected, info={"defaults": {"f": {"unit": "celsius", "days": 3}}})
    env = FunctionCallEnv(tasks=[task])
    for given, reward in [({"city": "Oslo"}, 1.0), ({"city": "Oslo", "unit": "celsius"}, 1.0), ({"city": "Oslo", "days": 3.0, "unit": "celsius"}, 1.0),
                          ({"city": "Oslo", "unit": "kelvin"}, 0.0), ({"city": "Oslo", "other": 1}, 0.0), ({"unit": "celsius"}, 0.0)]:
        env.reset(seed=0)
        _, r, _, _, info = env.step(format_hermes([ToolCall("f", given)]))
        assert (r, info["success"]) == (reward, reward == 1.0), given
    stated = Task(prompt="q", answer=[ToolCall("f", {"city": "Oslo", "unit": "fahrenheit"})], info=task.info)
    env = FunctionCallEnv(tasks=[stated])
    env.reset(seed=0)
    assert env.step(format_hermes([ToolCall("f", {"city": "Oslo"})]))[1] == 0.0


def test_without_defaults_a_default_value_is_an_extra_argument():
    _, reward, _, _, info = reward_of([ToolCall("w", {"city": "Oslo"})], [ToolCall("w", {"city": "Oslo", "unit": "celsius"})])
    assert reward == 0.0 and info["success"] is False
