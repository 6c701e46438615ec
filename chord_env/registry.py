"""The environment registry: chord-env's envs live in gymnasium's registry under the `chord/` namespace.

`register`, `make` and `list_ids` are thin layers over `gymnasium.register` / `gymnasium.make`, so
`gymnasium.make("chord/Calculator-v0")` works as well once `chord_env` is imported. Entry points are
`"module:callable"` strings, imported only when an env is made (worker processes stay light).

Third-party packages add environments without importing us, through the entry-point group
`chord_env.envs`: each entry's name is the env id (namespace optional) and its value the entry
point, e.g. in the package's pyproject.toml:

    [project.entry-points."chord_env.envs"]
    "Weather-v0" = "weather_pkg.env:WeatherEnv"

`load_plugins` registers them (called on `import chord_env`); a broken entry is reported with a
warning naming the package and never stops the others from loading.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

NAMESPACE = "chord"
ENTRY_POINT_GROUP = "chord_env.envs"


def full_id(env_id: str) -> str:
    """`Name-v0` -> `chord/Name-v0`; ids that already name a namespace are kept."""
    return env_id if "/" in env_id else f"{NAMESPACE}/{env_id}"


def register(env_id: str, entry_point: str, **kwargs: Any) -> None:
    """Register an environment under `chord/`; `kwargs` are passed to the entry point on `make`."""
    gym.register(id=full_id(env_id), entry_point=entry_point, kwargs=kwargs)


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """Make a registered environment (with gymnasium's usual wrappers: order and passive checks)."""
    return gym.make(full_id(env_id), **kwargs)


def list_ids() -> list[str]:
    """The ids of every environment registered under `chord/`, sorted."""
    return sorted(i for i, spec in gym.registry.items() if spec.namespace == NAMESPACE)


def load_plugins() -> list[str]:
    """Register the environments that installed packages declare under `chord_env.envs`."""
    added = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = ep.dist.name if ep.dist else "an unknown package"
        try:
            register(ep.name, ep.value)
            added.append(full_id(ep.name))
        except Exception as e:  # a broken plugin must not break chord-env or other plugins
            warnings.warn(f"could not register env {ep.name!r} from {source} ({ep.value}): {e}", stacklevel=2)
    return added


BUILTINS = {
    "chord/Arithmetic-v0": "chord_env.envs.builtin:arithmetic_env",
    "chord/ArithmeticHeldOut-v0": "chord_env.envs.math_heldout:heldout_math_env",
    "chord/BFCL-v0": "chord_env.envs.bfcl_single_turn:bfcl_env",
    "chord/BFCLMultiTurn-v0": "chord_env.envs.bfcl_multi_turn:bfcl_multi_turn_env",
    "chord/Calculator-v0": "chord_env.envs.builtin:calculator_env",
    "chord/FunctionCall-v0": "chord_env.envs.builtin:function_call_env",
    "chord/FunctionCatalog-v0": "chord_env.envs.function_tasks:function_catalog_env",
    "chord/ReasoningGym-v0": "chord_env.envs.math_tasks:reasoning_gym_env",
    "chord/Worlds-v0": "chord_env.envs.worlds:world_env",
    **{f"chord/World-{name.capitalize()}-v0": f"chord_env.envs.worlds:{name}_env"
       for name in ("calendar", "bank", "shop", "files", "contacts", "converter", "home", "travel")},
}


def register_builtins() -> None:
    """Register chord-env's own environments."""
    for env_id, entry_point in BUILTINS.items():
        register(env_id, entry_point)
