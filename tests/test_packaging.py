"""Packaging: the conda route (environment.yml) installs what pip does
(pyproject.toml), every package kd_utils imports is declared, and what a run
writes stays out of git."""
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}  # the interpreter and the installer themselves


def split_requirement(req):
    """'torch>=2.4,<=2.14.1' -> ('torch', '>=2.4,<=2.14.1')."""
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def toml_list(text, key):
    """The array of strings `key = [...]` of a TOML file, by regex (tomllib needs Python 3.11;
    requires-python is >= 3.10). Such an array is also a Python list literal."""
    return ast.literal_eval(re.search(rf"^{key} = (\[.*?\])", text, re.M | re.S).group(1))


def pyproject_requirements():
    text = (ROOT / "pyproject.toml").read_text()
    return dict(split_requirement(r) for r in toml_list(text, "dependencies") + toml_list(text, "dev"))


def read_environment_yml():
    """channels, top-level dependency strings and the nested pip: list of environment.yml."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [p for d in env["dependencies"] if isinstance(d, dict) for p in d.get("pip", [])]
    return env["channels"], deps, pip


def conda_requirements():
    out = {}
    for dep in read_environment_yml()[1]:
        name, spec = split_requirement(dep)
        if name not in NOT_PACKAGES:
            out[CONDA_TO_PYPI.get(name, name)] = spec
    return out


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    conda = conda_requirements()
    pip = pyproject_requirements()
    assert sorted(conda) == sorted(pip)
    for name, spec in pip.items():
        assert conda[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml {conda[name]!r}"


def test_environment_yml_uses_conda_forge_and_installs_the_project():
    channels, deps, pip = read_environment_yml()
    assert channels == ["conda-forge"]
    assert "pip" in deps and "-e ." in pip


IMPORT_TO_PYPI = {"PIL": "pillow", "yaml": "pyyaml", "IPython": "ipython"}


def test_every_package_kd_utils_imports_is_declared():
    declared = set(pyproject_requirements())
    imported = {alias.name.split(".")[0] if isinstance(node, ast.Import) else node.module.split(".")[0]
                for f in ROOT.glob("kd_utils/**/*.py") for node in ast.walk(ast.parse(f.read_text()))
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0)
                for alias in node.names}
    third_party = {IMPORT_TO_PYPI.get(m, m) for m in imported - set(sys.stdlib_module_names) - {"kd_utils"}}
    assert third_party - declared == set()


def test_the_dev_extras_cover_what_make_test_runs():
    pip = pyproject_requirements()
    for tool in ("pytest", "nbval", "jupyterlab", "nbconvert", "ipykernel", "pyyaml"):
        assert tool in pip


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("path", ["data/cifar-10-batches-py/data_batch_1", "runs/smoke/results.json",
                                  ".venv/bin/python"])
def test_gitignore_keeps_data_runs_and_the_venv_out_of_git(path):
    r = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert r.returncode == 0, f"{path} is not ignored by .gitignore"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_gitignore_does_not_hide_the_sources():
    for path in ("kd_utils/losses.py", "notebooks/01_softmax_temperature.ipynb", "figures/manifest.json"):
        r = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
        assert r.returncode == 1, f"{path} should not be ignored"
