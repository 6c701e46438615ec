"""Tools an agent can call: typed Python functions turned into JSON-Schema specs, run with limits."""

from chord_env.tools.calculator import calculator
from chord_env.tools.execute import ToolResult, execute
from chord_env.tools.http_get import make_http_get
from chord_env.tools.python_exec import SandboxUnavailable, make_python, python
from chord_env.tools.schema import Tool, tool

__all__ = [
    "SandboxUnavailable",
    "Tool",
    "ToolResult",
    "calculator",
    "execute",
    "make_http_get",
    "make_python",
    "python",
    "tool",
]
