"""ToolEnv: the Gymnasium contract, scripted episodes, and every kind of bad input from the agent."""

import time

import pytest

from chord_env.envs import Rubric, Task, ToolEnv, answer_match, format_ok
from chord_env.envs.builtin import calculator_task
from chord_env.parsing import format_hermes
from chord_env.tools import calculator, tool
from chord_env.types import Message, ToolCall


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first addend.
        b: second addend.
    """
    return a + b


@tool
def explode() -> str:
    """Always fails."""
    raise RuntimeError("the tool broke")


@tool(timeout=0.3)
def hang() -> str:
    """Never returns."""
    time.sleep(3600)
    return "unreachable"


@tool
def flood() -> str:
    """Returns 10 MB of text."""
    return "x" * 10_000_000


TOOLS = [add, explode, hang, flood]
TASK = Task(prompt="What is 2 + 3?", answer=5, expert=[format_hermes([ToolCall("add", {"a": 2, "b": 3})]), "It is 5."])


def make_env(**kwargs) -> ToolEnv:
    return ToolEnv(tools=TOOLS, tasks=[TASK], **kwargs)


def hermes(name, **arguments) -> str:
    return format_hermes([ToolCall(name, arguments)])


def test_expert_episode_earns_full_reward():
    env = make_env()
    obs, info = env.reset(seed=0)
    assert obs == [Message("user", "What is 2 + 3?")]
    assert {s.name for s in info["tools"]} == {"add", "explode", "hang", "flood"}
    obs, reward, terminated, truncated, info = env.step(TASK.expert[0])
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs[0].role == "tool" and obs[0].content == "5" and obs[0].name == "add"
    obs, reward, terminated, truncated, info = env.step(TASK.expert[1])
    assert terminated and not truncated and obs == []
    assert info["reward_breakdown"] == {"answer": 1.0, "format": 1.0} and info["success"] is True
    assert reward == pytest.approx(1.1)


def test_calculator_tasks_are_solved_by_their_expert():
    import numpy as np

    env = ToolEnv(tools=[calculator], tasks=calculator_task)
    for seed in range(20):
        task = calculator_task(np.random.default_rng(seed))
        env.reset(options={"task": task})
        rewards = [env.step(a)[1] for a in task.expert]
        assert rewards[-1] == pytest.approx(1.1), task


@pytest.mark.parametrize(
    "action, error_kind, fragment",
    [
        ('<tool_call>{"name": "add", "arguments": {"a": 1,, }}</tool_call>', "parse", "could not parse"),
        (hermes("subtract", a=1, b=2), "unknown_tool", "unknown tool"),
        (hermes("add", a=1), "invalid_arguments", ""),
        (hermes("add", a=1, b=2, c=3), "invalid_arguments", ""),
        (hermes("add", a="one", b=2), "invalid_arguments", ""),
        (hermes("explode"), "tool_exception", "the tool broke"),
        (hermes("hang"), "timeout", ""),
    ],
)
def test_bad_calls_become_messages_to_the_agent(action, error_kind, fragment):
    env = make_env()
    env.reset(seed=0)
    start = time.monotonic()
    obs, reward, terminated, truncated, info = env.step(action)
    assert time.monotonic() - start < 5
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert len(obs) == 1 and obs[0].role == "tool" and obs[0].content.startswith("Error")
    assert fragment in obs[0].content
    if error_kind == "parse":
        assert info["parse_error"]
    else:
        assert info["tool_errors"] == [error_kind]
    # the episode goes on: the agent can still finish and is scored; the format term is docked for
    # the agent's own mistakes (unparseable, unknown tool, invalid arguments), not for a failing tool
    obs, reward, terminated, truncated, info = env.step("The answer is 5.")
    agents_fault = error_kind in ("parse", "unknown_tool", "invalid_arguments")
    assert terminated and info["reward_breakdown"] == {"answer": 1.0, "format": 0.5 if agents_fault else 1.0}


def test_huge_tool_output_is_capped():
    env = make_env()
    env.reset(seed=0)
    obs, *_ = env.step(hermes("flood"))
    assert len(obs[0].content) < 20_000 and "truncated" in obs[0].content


def test_several_calls_in_one_turn_answer_in_order():
    env = make_env()
    env.reset(seed=0)
    action = format_hermes([ToolCall("add", {"a": 1, "b": 1}), ToolCall("nope", {}), ToolCall("add", {"a": 2, "b": 2})])
    obs, _, _, _, info = env.step(action)
    assert [m.content for m in obs][0::2] == ["2", "4"] and "unknown tool" in obs[1].content
    assert [m.tool_call_id for m in obs] == [c["id"] for c in info["tool_calls"]]


def test_a_malformed_call_beside_well_formed_ones_runs_the_well_formed_ones():
    env = make_env()
    env.reset(seed=0)
    good = [ToolCall("add", {"a": 1, "b": 1}), ToolCall("add", {"a": 2, "b": 2})]
    action = format_hermes(good[:1]) + '\n<tool_call>{"name": "add", "arguments": {"a": 1,, }}</tool_call>\n' + format_hermes(good[1:])
    obs, reward, terminated, truncated, info = env.step(action)
    assert (reward, terminated, truncated) == (0.0, False, False)
    # each well-formed call ran and is answered under its id; then one error for the malformed call
    ids = [c["id"] for c in info["tool_calls"]]
    assert [c["arguments"] for c in info["tool_calls"]] == [c.arguments for c in good] and len(set(ids)) == 2
    assert [(m.content, m.tool_call_id) for m in obs[:2]] == [("2", ids[0]), ("4", ids[1])]
    assert len(obs) == 3 and obs[2].tool_call_id is None and obs[2].content.startswith("Error")
    assert "<tool_call> #2" in obs[2].content and info["parse_error"] and info["tool_errors"] == []
    # the history holds exactly the calls that ran, each followed by its result
    turn = env.unwrapped.messages[-4:]
    assert [c.id for c in turn[0].tool_calls] == ids and [m.tool_call_id for m in turn[1:3]] == ids
    assert [r.content for r in env.unwrapped.tool_results] == ["2", "4"]
    _, reward, terminated, _, info = env.step("The answer is 5.")
    assert terminated and info["reward_breakdown"] == {"answer": 1.0, "format": 0.5} and info["success"] is True


def test_max_turns_truncates_with_a_defined_reward():
    env = make_env(max_turns=2)
    env.reset(seed=0)
    env.step(hermes("add", a=1, b=1))
    obs, reward, terminated, truncated, info = env.step(hermes("add", a=1, b=1))
    assert truncated and not terminated and info["truncation"] == "max_turns"
    assert info["reward_breakdown"] == {"answer": 0.0, "format": 1.0} and reward == pytest.approx(0.1)
    assert info["success"] is False


def test_max_tokens_truncates():
    env = make_env(max_tokens=30, count_tokens=lambda s: len(s.split()))
    env.reset(seed=0)
    truncated = False
    for _ in range(5):
        _, _, _, truncated, info = env.step(hermes("add", a=1, b=1))
        if truncated:
            break
    assert truncated and info["truncation"] == "max_tokens"
    with pytest.raises(ValueError, match="count_tokens"):
        make_env(max_tokens=10)


def test_a_reward_function_that_raises_scores_zero_and_is_reported():
    def broken(episode):
        raise KeyError("oops")

    env = make_env(rubric=Rubric({"answer": (1.0, answer_match), "broken": (1.0, broken), "format": (0.5, format_ok)}))
    env.reset(seed=0)
    env.step(TASK.expert[0])
    _, reward, terminated, _, info = env.step(TASK.expert[1])
    assert terminated and reward == pytest.approx(1.5)
    assert info["reward_breakdown"]["broken"] == 0.0 and "KeyError" in info["reward_errors"][0]
    assert info["success"] is False  # a rubric that failed cannot vouch for the episode


def test_programming_mistakes_raise_clearly():
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="str"):
        env.step({"content": "hi"})
    env.step("final answer")
    with pytest.raises(RuntimeError, match="reset"):
        env.step("again")
    with pytest.raises(ValueError, match="parser"):
        make_env(parser="xml")


def test_stateful_tools_are_fresh_each_episode():
    def make_tools(task):
        balance = {"value": 100}

        @tool
        def withdraw(amount: int) -> int:
            """Withdraw money.

            Args:
                amount: how much.
            """
            if amount > balance["value"]:
                raise ValueError("insufficient funds")
            balance["value"] -= amount
            return balance["value"]

        return [withdraw]

    env = ToolEnv(tools=make_tools, tasks=[TASK])
    for _ in range(2):
        env.reset(seed=0)
        assert env.step(hermes("withdraw", amount=60))[0][0].content == "40"
        assert "insufficient funds" in env.step(hermes("withdraw", amount=60))[0][0].content


def test_spaces_mean_something():
    env = make_env()
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert not env.observation_space.contains([{"role": "user", "content": "a dict is not a Message"}])
    assert not env.observation_space.contains([Message("user", "hi", tool_calls=[ToolCall("f", {})])])
    assert env.action_space.contains("any text at all, even <tool_call>")
    assert not env.action_space.contains(42)
    env.action_space.seed(3)
    first = [env.action_space.sample() for _ in range(3)]
    env.action_space.seed(3)
    assert first == [env.action_space.sample() for _ in range(3)]
