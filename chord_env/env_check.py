"""`chord-env envs check`: gymnasium's env checker plus one scripted episode, reported in plain words.

The scripted episode plays the env's expert turns when it offers them (`env.unwrapped.expert_actions()`,
as chord-env's envs do) and otherwise samples actions from its action space; it must end within
`max_steps` steps without an exception, and an expert episode must earn a positive reward.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

from chord_env.registry import make


@dataclass
class CheckReport:
    env_id: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    steps: int = 0
    reward: float = 0.0
    scripted: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def check(env_id: str, seed: int = 0, max_steps: int = 50) -> CheckReport:
    """Run gymnasium's checker and one scripted episode on `env_id`; never raises for env faults."""
    report = CheckReport(env_id)
    try:
        env = make(env_id)
    except Exception as e:
        report.problems.append(f"could not make the env: {type(e).__name__}: {e}")
        return report
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_env(env.unwrapped, skip_render_check=True)
        except Exception as e:
            report.problems.append(f"gymnasium's env checker failed: {type(e).__name__}: {e}")
    report.warnings = sorted({str(w.message) for w in caught})
    try:
        _scripted_episode(env, seed, max_steps, report)
    except Exception as e:
        report.problems.append(f"the scripted episode crashed at step {report.steps}: {type(e).__name__}: {e}")
    env.close()
    return report


def _scripted_episode(env: gym.Env, seed: int, max_steps: int, report: CheckReport) -> None:
    env.reset(seed=seed)
    expert = getattr(env.unwrapped, "expert_actions", None)
    actions = list(expert()) if callable(expert) else []
    report.scripted = bool(actions)
    env.action_space.seed(seed)
    for step in range(max_steps):
        action = actions[step] if step < len(actions) else env.action_space.sample()
        _, reward, terminated, truncated, _ = env.step(action)
        report.steps, report.reward = step + 1, report.reward + float(reward)
        if terminated or truncated:
            if report.scripted and report.reward <= 0:
                report.problems.append(f"the expert episode ended with reward {report.reward:g}; expected > 0")
            return
    report.problems.append(f"the scripted episode did not end within {max_steps} steps")


def format_report(report: CheckReport) -> str:
    kind = "expert" if report.scripted else "random-action"
    lines = [f"{report.env_id}: {'OK' if report.ok else 'FAILED'}"]
    lines.append(f"  {kind} episode: {report.steps} steps, total reward {report.reward:g}")
    lines += [f"  problem: {p}" for p in report.problems]
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines)
