"""The method configs shipped with chord-env and how a config name resolves to its file.

The YAML files live in `configs/` at the repository root; `trainer/configs` links there, so they are
package data of `chord_env.trainer` (pyproject.toml) and found the same way in an editable checkout
and in an installed wheel, whatever the working directory.
"""

from __future__ import annotations

from pathlib import Path

CONFIGS = Path(__file__).resolve().parent / "configs"


def config_file(name_or_path: str) -> Path:
    """A YAML file as given, or a packaged config by name (`chord-phi` -> `CONFIGS / "chord-phi.yaml"`)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    packaged = CONFIGS / f"{name_or_path}.yaml"
    if not packaged.is_file():
        names = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
        raise ValueError(f"--config {name_or_path}: not a YAML file, nor a packaged config ({names})")
    return packaged
