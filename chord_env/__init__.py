"""chord-env: Gymnasium tool-use environments, on-policy rollouts and CHORD training for LLM agents.

Importing the package registers the built-in environments and those of installed plugins under
gymnasium's `chord/` namespace: `chord_env.make("chord/Calculator-v0")`, `chord_env.list()`.
"""

__version__ = "0.1.0"
"""the package version (pyproject.toml reads it from here)"""

from chord_env.registry import list_ids, load_plugins, make, register, register_builtins  # noqa: E402

list = list_ids  # noqa: A001 - the public name is chord_env.list(), as in the README

register_builtins()
load_plugins()

__all__ = ["__version__", "register", "make", "list", "list_ids", "load_plugins"]
