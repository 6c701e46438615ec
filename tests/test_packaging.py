"""What a pip user gets: `--version`, defaults in `--help`, `envs list --verbose`, config names, the
extras command; and a built wheel, installed into a fresh venv, that finds its configs from outside
the repository."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

import chord_env
from chord_env.cli import main
from chord_env.extras import NO_DEPS
from chord_env.registry import BUILTINS
from chord_env.trainer.recipes import CONFIGS, config_file

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tuple(sorted(set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())))
SOURCES = ("pyproject.toml", "README.md", "configs", *PACKAGE_DIRS)  # every folder the wheel's packages come from


def test_version_and_help_defaults(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"chord-env {chord_env.__version__}"
    with pytest.raises(SystemExit):
        main(["rollout", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: 256)" in shown and "(default: 0)" in shown and "(default: None)" not in shown


def test_envs_list_verbose_shows_description_tools_and_reward(capsys):
    assert main(["envs", "list", "--verbose"]) == 0
    blocks = capsys.readouterr().out.split("\nchord/")
    calculator = next(b for b in blocks if b.startswith("Calculator-v0"))
    assert "ToolEnv with the `calculator` tool" in calculator and "tools: calculator" in calculator and "reward: 0 to 1.1" in calculator
    builtins = [b for b in blocks if "chord/" + b.split("\n")[0].removeprefix("chord/") in BUILTINS]
    assert len(builtins) == len(BUILTINS) and not any("error:" in b for b in builtins)  # other tests may register broken envs


def test_config_names_resolve_to_the_packaged_files(tmp_path):
    assert config_file("chord-phi") == CONFIGS / "chord-phi.yaml" and config_file("chord-phi").is_file()
    assert config_file(str(tmp_path / "mine.yaml")) == tmp_path / "mine.yaml"
    with pytest.raises(ValueError, match="chord-phi"):
        config_file("no-such-method")
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(p.name for p in (REPO / "configs").glob("*.yaml"))


def test_install_extras_dry_run_prints_the_no_deps_pip_line(capsys):
    assert main(["install-extras", "--dry-run"]) == 0
    line = capsys.readouterr().out.split()
    assert line[1:5] == ["-m", "pip", "install", "--no-deps"] and tuple(line[5:]) == NO_DEPS
    assert "chord-env install-extras" in (REPO / "Makefile").read_text()


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_finds_its_configs(tmp_path):
    """The wheel is built from a copy of the sources and installed with --no-deps into a venv that
    reuses this venv's packages through a .pth line (which adds the folder but runs none of its .pth
    files, so the editable install is not seen); every command runs with cwd outside the repository."""
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("chord_env-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "reuse-main-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "-q", "--no-deps", str(wheel)], check=True)

    env = {"HF_HUB_OFFLINE": "1", "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "")}
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def run(*args: str) -> str:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=outside)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run(str(venv / "bin" / "chord-env"), "--version").strip() == f"chord-env {chord_env.__version__}"
    assert "--config CONFIG" in run(str(venv / "bin" / "chord-env"), "train", "--config", "chord-phi", "--help")
    found = run(str(python), "-c", "import chord_env; from chord_env.trainer.recipes import config_file; "
                "from chord_env.trainer.config import load_config; path = config_file('chord-phi'); "
                "print(chord_env.__file__); print(path); print(load_config(path, ['model=m']).mu.kind)").split("\n")
    assert found[0].startswith(purelib) and found[1].startswith(purelib) and found[2]
    assert sorted(p.name for p in (Path(purelib) / "chord_env" / "trainer" / "configs").iterdir()) == sorted(
        p.name for p in CONFIGS.glob("*.yaml"))
