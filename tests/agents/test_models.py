"""prepare-model: the tiny model's shape, caching, partial folders, and errors that name what is missing."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from chord_env.cli import main
from chord_env.models import MARKER, check_model_dir, is_prepared, prepare_model


def test_tiny_model_is_smollm2_shaped(tiny_model_dir, tiny_model):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["head_dim"] == 64 and config["tie_word_embeddings"] and config["vocab_size"] == 49152
    assert tiny_model.lm_head.weight.data_ptr() == tiny_model.model.embed_tokens.weight.data_ptr()
    assert json.loads((tiny_model_dir / MARKER).read_text()) == {"name": "tiny-random", "dtype": "fp32", "version": 1}
    assert "<tool_call>" in (tiny_model_dir / "chat_template.jinja").read_text()


def test_second_call_is_instant_and_cli_reuses_the_folder(tiny_model_dir, capsys):
    start = time.perf_counter()
    assert prepare_model("tiny-random", tiny_model_dir) == tiny_model_dir
    assert time.perf_counter() - start < 0.5
    assert main(["prepare-model", "tiny-random", "--out", str(tiny_model_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(tiny_model_dir)


def test_partial_or_different_folder_is_never_taken(tiny_model_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_model_dir, partial)
    (partial / "tokenizer.json").unlink()
    assert not is_prepared(partial, "tiny-random")
    with pytest.raises(FileExistsError, match="not a complete tiny-random"):
        prepare_model("tiny-random", partial)
    no_marker = tmp_path / "no-marker"
    shutil.copytree(tiny_model_dir, no_marker)
    (no_marker / MARKER).unlink()
    with pytest.raises(FileExistsError, match=MARKER):
        prepare_model("tiny-random", no_marker)
    with pytest.raises(FileExistsError, match="holds"):
        prepare_model("tiny-random", tiny_model_dir, dtype="bf16")


@pytest.mark.parametrize(
    "remove, named",
    [
        (["config.json"], "config.json"),
        (["model.safetensors"], "weights (model.safetensors"),
        (["tokenizer.json"], "tokenizer.json"),
        (["chat_template.jinja"], "chat template"),
    ],
)
def test_missing_file_error_names_it(tiny_model_dir, tmp_path, remove, named):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    for name in remove:
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError) as err:
        check_model_dir(folder)
    assert named in str(err.value) and "missing" in str(err.value)
    assert ", " not in str(err.value).split("missing ")[1]  # only what is missing is named


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_model_dir(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown model"):
        prepare_model("gpt-5", tmp_path / "m")
    with pytest.raises(ValueError, match="unknown dtype"):
        prepare_model("tiny-random", tmp_path / "m", dtype="fp8")
