"""Operator mistakes lose nothing (issue 11, item 6): `chord-env train` refuses a non-empty run folder
without --resume or --overwrite before writing anything; the model folder, the env ids and the expert
traces are checked before anything loads (no Hugging Face Hub lookup); counts like `--n -1` are
refused by argparse; every CLI error is one line on stderr with a non-zero status, `--debug` shows
the traceback. The CLI runs in-process (`cli.main`) with `train` replaced by a recorder, so nothing
here loads a model; one subprocess checks the real entry point's status and stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chord_env import cli

CLI = str(Path(sys.executable).parent / "chord-env")


@pytest.fixture()
def model(tmp_path):
    """A folder that passes the model-folder check (nothing here loads it)."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    return folder


@pytest.fixture()
def trained(monkeypatch):
    """Replace the training loop with a recorder of (config, resume, run folder contents at the call)."""
    import chord_env.trainer.train as train_module

    calls = []

    def fake_train(config, resume=False):
        out = Path(config.out)
        calls.append((config, resume, sorted(p.name for p in out.iterdir()) if out.is_dir() else []))
        return out

    monkeypatch.setattr(train_module, "train", fake_train)
    return calls


@pytest.fixture()
def old_run(tmp_path):
    """A run folder from an earlier run: its config, metrics and a checkpoint folder."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: old\n")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    return run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_fresh_run_into_a_non_empty_folder_is_refused_before_anything_is_written(model, old_run, trained, capsys):
    before = snapshot(old_run)
    assert cli.main(["train", f"model={model}", f"out={old_run}", "mu=0"]) == 1
    err = error_line(capsys)
    assert "is not empty" in err and "--resume" in err and "--overwrite" in err
    assert trained == [] and snapshot(old_run) == before


def test_overwrite_empties_a_run_folder_first_but_never_a_foreign_one(model, old_run, trained, tmp_path, capsys):
    assert cli.main(["train", f"model={model}", f"out={old_run}", "mu=0", "--overwrite"]) == 0
    assert trained[0][2] == [] and trained[0][1] is False
    foreign = tmp_path / "src"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert cli.main(["train", f"model={model}", f"out={foreign}", "mu=0", "--overwrite"]) == 1
    assert "not a run folder" in error_line(capsys) and (foreign / "notes.txt").read_text() == "keep me"


def test_an_empty_or_missing_run_folder_is_fine(model, trained, tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new"):
        assert cli.main(["train", f"model={model}", f"out={out}", "mu=0"]) == 0
    assert len(trained) == 2


def test_resume_checks_the_folder_and_trains_in_the_folder_given(model, trained, tmp_path, capsys):
    import torch

    from chord_env.trainer.checkpoint import save_checkpoint
    from chord_env.trainer.config import load_config, save_config

    run = tmp_path / "moved-run"
    save_config(load_config(None, [f"model={model}", "out=somewhere/else", "mu=0"]), run / "config.yaml")
    assert cli.main(["train", "--resume", str(run)]) == 1
    assert "no complete checkpoint" in error_line(capsys)
    layer = torch.nn.Linear(2, 2)
    save_checkpoint(run, 1, layer, torch.optim.SGD(layer.parameters(), lr=0.1), None, {"step": 1})
    assert cli.main(["train", "--resume", str(run)]) == 0
    config, resume, _ = trained[0]
    assert resume is True and Path(config.out) == run
    assert cli.main(["train", "--resume", str(tmp_path / "nothing")]) == 1
    assert "not a run folder" in error_line(capsys)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--resume", str(run), "--overwrite"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("name", ["HuggingFaceTB/SmolLM2-135M-Instruct", "no-such-folder"])
def test_a_missing_model_folder_is_one_line_and_no_hub_lookup(name, trained, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hugging Face Hub was consulted")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", f"model={name}", f"out={tmp_path / 'run'}", "env=chord/Nope-v0"]) == 1
    assert "model folder" in error_line(capsys) and trained == []  # the model before the env
    assert not (tmp_path / "run").exists()


def test_an_incomplete_model_folder_is_named(model, trained, tmp_path, capsys):
    (model / "tokenizer.json").unlink()
    assert cli.main(["train", f"model={model}", f"out={tmp_path / 'run'}", "mu=0"]) == 1
    assert "missing tokenizer.json" in error_line(capsys) and trained == []


def test_the_env_id_is_checked_before_the_model_loads(model, trained, tmp_path, capsys):
    assert cli.main(["train", f"model={model}", f"out={tmp_path / 'run'}", "mu=0", "env={chord/Calculator-v0: 1, chord/Calculater-v0: 1}"]) == 1
    err = error_line(capsys)
    assert "'chord/Calculater-v0' is not registered" in err and "did you mean 'chord/Calculator-v0'" in err
    assert trained == [] and not (tmp_path / "run").exists()


def test_expert_traces_are_checked_before_the_model_loads(model, trained, tmp_path, capsys):
    expert = tmp_path / "expert.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    expert.write_text(json.dumps(good) + "\n" + json.dumps({"messages": [{"role": "user", "content": 3}]}) + "\n")
    assert cli.main(["train", f"model={model}", f"out={tmp_path / 'run'}", f"expert={expert}"]) == 1
    assert "row 2: message 0: content must be a string" in error_line(capsys)
    assert cli.main(["train", f"model={model}", f"out={tmp_path / 'run'}", f"expert={tmp_path / 'none.jsonl'}"]) == 1
    assert "no such file" in error_line(capsys)
    assert cli.main(["train", f"model={model}", f"out={tmp_path / 'run'}"]) == 1  # mu > 0 and no expert
    assert "no expert traces" in error_line(capsys) and trained == []


@pytest.mark.parametrize("argv", [
    ["data", "build", "--out", "x", "--n", "-1"],
    ["data", "build", "--out", "x", "--n", "0"],
    ["rollout", "--env", "chord/Calculator-v0", "--model", "m", "--out", "o.jsonl", "--num-tasks", "0"],
    ["rollout", "--env", "chord/Calculator-v0", "--model", "m", "--out", "o.jsonl", "--group", "-2"],
    ["rollout", "--env", "chord/Calculator-v0", "--model", "m", "--out", "o.jsonl", "--temperature", "nan"],
    ["eval", "--model", "m", "--out", "r", "--limit", "0"],
    ["data", "show", "d", "--count", "-3"],
    ["demo", "--seed", "-1"],
])
def test_bad_counts_are_refused_by_argparse_in_one_line(argv, monkeypatch, capsys):
    import chord_env.envs.data_build as data_build

    monkeypatch.setattr(data_build, "build", lambda *a, **k: pytest.fail("the command ran"))
    monkeypatch.setattr(data_build, "show", lambda *a, **k: pytest.fail("the command ran"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "must be" in error_line(capsys)


def test_any_command_error_is_one_line_and_debug_shows_it(monkeypatch, capsys):
    import chord_env.envs.data_build as data_build

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(data_build, "show", broken)
    assert cli.main(["data", "show", "somewhere"]) == 1
    assert "error: RuntimeError: disk on fire second line" in error_line(capsys)
    for argv in (["--debug", "data", "show", "somewhere"], ["data", "show", "somewhere", "--debug"]):
        with pytest.raises(RuntimeError, match="disk on fire"):
            cli.main(argv)


def test_the_installed_command_exits_non_zero_with_one_line(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    done = subprocess.run([CLI, "train", f"model={tmp_path / 'missing'}", f"out={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "model folder" in done.stderr, done.stderr
    debug = subprocess.run([CLI, "--debug", "train", f"model={tmp_path / 'missing'}"], capture_output=True, text=True, timeout=300, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
