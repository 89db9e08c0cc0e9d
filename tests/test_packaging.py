"""Packaging: the conda route (environment.yml) installs what pip does
(pyproject.toml), and what a run writes stays out of git."""
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}  # the interpreter and the installer themselves


def split_requirement(req):
    """'torch>=2.4,<=2.14.1' -> ('torch', '>=2.4,<=2.14.1')."""
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def pyproject_requirements():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + list(meta["optional-dependencies"]["dev"])
    return dict(split_requirement(r) for r in reqs)


def read_environment_yml():
    """channels, top-level dependency strings and the nested pip: list of
    environment.yml, read by hand (PyYAML is not one of our dependencies)."""
    channels, deps, pip, section = [], [], [], None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()[2:].strip() if line.strip().startswith("- ") else None
        if indent == 0:
            section = line.split(":")[0]
        elif item == "pip:":
            section = "pip"
        elif item is not None and section == "channels":
            channels.append(item)
        elif item is not None and section == "pip" and indent > 2:
            pip.append(item)
        elif item is not None and section in ("dependencies", "pip"):
            section = "dependencies"
            deps.append(item)
    return channels, deps, pip


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


def test_the_dev_extras_cover_what_make_test_runs():
    pip = pyproject_requirements()
    for tool in ("pytest", "nbval", "jupyterlab", "nbconvert", "ipykernel"):
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
