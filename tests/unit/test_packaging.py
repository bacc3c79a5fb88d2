"""The distribution's layout: every package folder is shipped under its fairpack.* name."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _import_name(folder: Path) -> str:
    """The import name setuptools gives a package folder through package-dir."""
    for name, top in SETUPTOOLS["package-dir"].items():
        top_path = ROOT / top
        if folder == top_path or top_path in folder.parents:
            rest = folder.relative_to(top_path).parts
            return ".".join((name, *rest))
    raise AssertionError(f"{folder} is under no package-dir entry")


def _package_folders() -> list[Path]:
    tops = [ROOT / top for top in SETUPTOOLS["package-dir"].values()]
    return sorted(p.parent for top in tops for p in top.rglob("__init__.py") if "__pycache__" not in p.parts)


def test_every_package_folder_is_listed_in_pyproject() -> None:
    missing = {_import_name(f) for f in _package_folders()} - set(SETUPTOOLS["packages"])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.parametrize("name", SETUPTOOLS["packages"])
def test_listed_package_imports_from_its_folder(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert _import_name(Path(module.__file__).parent) == name


def test_standard_library_operator_is_not_shadowed() -> None:
    # Looked up at run time: a static `import operator` would resolve to the repo's folder
    # for tools that put the working directory first (mypy, python -m), which is the point.
    operator = importlib.import_module("operator")
    assert operator.__file__ is not None
    assert Path(operator.__file__).name == "operator.py"
    assert operator.add(2, 3) == 5
