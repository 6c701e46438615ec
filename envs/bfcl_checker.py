"""Import BFCL's own AST checker and data loaders offline, without its provider SDKs.

`bfcl-eval` is installed with `--no-deps` (a normal install pulls a CUDA torch and ~150 packages;
see docs/platform.md, "BFCL"). Two things stand in its way, and this module handles both before the
first import of anything from `bfcl_eval`:

- `bfcl_eval.eval_checker.ast_eval.ast_checker` imports `bfcl_eval.constants.model_config`, which
  imports every provider SDK (openai, anthropic, tree_sitter, ...). The checker only reads
  `MODEL_CONFIG_MAPPING[model_name].underscore_to_dot` from it, to rename dotted function names for
  APIs that forbid dots. We put a stand-in module in `sys.modules` whose mapping answers
  `underscore_to_dot=False` for every model: our models see the dotted names as BFCL writes them,
  so the checker compares names verbatim.
- `bfcl_eval.constants.eval_config` creates `result/`, `score/` and `.file_locks/` folders under
  `BFCL_PROJECT_ROOT` at import time, by default inside site-packages. We point it at a fresh
  temporary folder unless the caller set it.

If the real `model_config` was imported earlier in the process (someone installed all of BFCL's
dependencies and imported it), it is left alone. Everything else here is BFCL's code, unchanged.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import types
from dataclasses import dataclass
from typing import Any, Callable

MODEL_NAME = "chord-env"
"""The model name passed to BFCL's checker; the stand-in config answers for any name."""

_MODEL_CONFIG = "bfcl_eval.constants.model_config"


@dataclass(frozen=True)
class _StandInConfig:
    underscore_to_dot: bool = False


class _StandInMapping(dict):
    def __missing__(self, key: str) -> _StandInConfig:
        return _StandInConfig()


@dataclass(frozen=True)
class BFCL:
    """The parts of `bfcl_eval` chord-env uses."""

    ast_checker: Callable[..., dict[str, Any]]
    language: Any
    """`bfcl_eval.constants.enums.Language`."""
    load_dataset_entry: Callable[..., list[dict[str, Any]]]
    load_ground_truth_entry: Callable[[str], list[dict[str, Any]]]
    categories: dict[str, list[str]]
    """BFCL's category groups (`TEST_COLLECTION_MAPPING`: "non_live", "live", "single_turn", ...)."""
    type_to_json_schema: dict[str, str]
    """BFCL's type names -> JSON Schema ones (`GORILLA_TO_OPENAPI`)."""


_bfcl: BFCL | None = None


def _install_stand_in() -> None:
    if _MODEL_CONFIG in sys.modules:
        return
    module = types.ModuleType(_MODEL_CONFIG, "chord-env stand-in: every model has underscore_to_dot=False")
    module.MODEL_CONFIG_MAPPING = _StandInMapping()
    sys.modules[_MODEL_CONFIG] = module


def bfcl() -> BFCL:
    """BFCL's checker and loaders, imported once (after the stand-in and the project root are set).

    Raises ImportError with the install command if `bfcl-eval` is missing.
    """
    global _bfcl
    if _bfcl is not None:
        return _bfcl
    if "BFCL_PROJECT_ROOT" not in os.environ:
        root = tempfile.mkdtemp(prefix="chord-env-bfcl-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        os.environ["BFCL_PROJECT_ROOT"] = root
    _install_stand_in()
    try:
        from bfcl_eval.constants.category_mapping import TEST_COLLECTION_MAPPING
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry
    except ImportError as e:
        raise ImportError(
            f"BFCL's checker could not be imported ({e}); install it with "
            "`pip install --no-deps bfcl-eval==2026.3.23 mpmath filelock`"
        ) from e
    _bfcl = BFCL(
        ast_checker, Language, load_dataset_entry, load_ground_truth_entry, TEST_COLLECTION_MAPPING, GORILLA_TO_OPENAPI
    )
    return _bfcl
