"""BFCL's own evaluation pipeline, taken verbatim from the installed `bfcl-eval` source, for agreement tests.

`bfcl_eval.eval_checker.eval_runner` and `bfcl_eval.model_handler.*` cannot be imported here: they
pull tree_sitter, openai, tenacity and other packages we install BFCL without. The functions we
compare against are pure Python, so this module reads their source from the installed files, drops
their decorators (`@override`, `@staticmethod`), and defines them in a namespace holding the names
they use (BFCL's checkers, its `utils`):

- `eval_runner.py`: `_evaluate_single_ast_entry`, `_evaluate_single_relevance_entry`,
  `_evaluate_single_multi_turn_entry` (how BFCL scores one single-turn / multi-turn entry);
- `local_inference/qwen_fc.py`: `QwenFCHandler.decode_ast`, `decode_execute`, `_extract_tool_calls`
  (BFCL's Hermes-format decode, the handler of Qwen's FC models);
- `model_handler/utils.py`: `convert_to_function_call`.

Nothing here is ours except the loading; a change in BFCL's code shows up in these tests.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from chord_env.envs.bfcl_checker import MODEL_NAME, bfcl


def _functions(path: Path, names: set[str], class_name: str | None = None) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    body = tree.body
    if class_name is not None:
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name).body
    found = {}
    for node in body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            node.decorator_list = []
            found[node.name] = ast.unparse(node)
    missing = names - found.keys()
    if missing:
        raise LookupError(f"{sorted(missing)} not found in {path}")
    return found


def load() -> SimpleNamespace:
    """BFCL's scoring functions and a Hermes handler (`handler.decode_ast`, `handler.decode_execute`)."""
    bfcl()
    import bfcl_eval
    from bfcl_eval.constants.enums import Language, ReturnFormat
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import (
        multi_turn_checker,
        multi_turn_irrelevance_checker,
    )
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import is_empty_execute_response
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

    root = Path(bfcl_eval.__file__).parent
    namespace: dict[str, Any] = {
        "json": json, "re": re, "Any": Any, "BaseHandler": object, "Language": Language, "ReturnFormat": ReturnFormat,
        "ast_checker": ast_checker, "multi_turn_checker": multi_turn_checker,
        "multi_turn_irrelevance_checker": multi_turn_irrelevance_checker,
        "is_empty_execute_response": is_empty_execute_response, "is_empty_output": is_empty_output,
        "is_function_calling_format_output": is_function_calling_format_output,
    }
    sources = {
        **_functions(root / "model_handler/utils.py", {"convert_to_function_call"}),
        **_functions(root / "eval_checker/eval_runner.py",
                     {"_evaluate_single_ast_entry", "_evaluate_single_relevance_entry", "_evaluate_single_multi_turn_entry"}),
    }
    for source in sources.values():
        exec(compile(source, "<bfcl-eval>", "exec"), namespace)
    methods = _functions(root / "model_handler/local_inference/qwen_fc.py",
                         {"decode_ast", "decode_execute", "_extract_tool_calls"}, "QwenFCHandler")
    handler_ns: dict[str, Any] = dict(namespace)
    exec(compile("\n".join(methods.values()), "<bfcl-eval qwen_fc>", "exec"), handler_ns)
    handler = type("QwenFCHandler", (), {
        "decode_ast": handler_ns["decode_ast"],
        "decode_execute": handler_ns["decode_execute"],
        "_extract_tool_calls": staticmethod(handler_ns["_extract_tool_calls"]),
    })()
    return SimpleNamespace(handler=handler, model_name=MODEL_NAME, Language=Language, ReturnFormat=ReturnFormat,
                           **{k: namespace[k] for k in sources})
