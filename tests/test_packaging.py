"""Packaging: the conda route (environment.yml) installs what pip does
(pyproject.toml), every package kd_utils imports is declared, what a run
writes stays out of git, and the package's shape: `import kd_utils` loads the
core only (extras and exercises load when first used), no core module imports
them, and no kd_utils modules import each other in a cycle."""
import ast
import re
import shutil
import subprocess
import sys
import textwrap
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


# ------------------------------------------------------------ the package's imports

PACKAGE = ROOT / "kd_utils"
CORE = sorted(f.stem for f in PACKAGE.glob("*.py") if f.stem not in ("__init__", "__main__"))
OPTIONAL = ("kd_utils.extras", "kd_utils.exercises")


def module_name(path, root=PACKAGE):
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root=PACKAGE):
    """{module: {kd_utils modules it imports}}, from the source (every import statement,
    also inside functions): `from . import x` is an edge to the submodule x when there is
    one, else to the package itself; `from .data import f` an edge to kd_utils.data."""
    files = {module_name(f, root): f for f in root.rglob("*.py")}
    graph = {}
    for name, f in files.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: level 1 is this module's package
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:  # kd_utils.data.Dataset -> kd_utils.data; torch -> ""
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules (first = last), or None."""
    state, path = {}, []

    def visit(node):
        state[node], _ = "open", path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node], _ = "done", path.pop()
        return None

    return next((c for n in sorted(graph) if n not in state and (c := visit(n))), None)


def test_no_kd_utils_modules_import_each_other_in_a_cycle():
    """Each module imports only those below it (storage at the bottom, cli at the top): a cycle
    would make the import order matter, and half-initialised modules fail at random."""
    assert find_cycle(import_graph()) is None


def test_the_cycle_check_finds_a_cycle(tmp_path):
    """The check above on a package with a cycle through an import inside a function (like the
    old data.py <-> extras/imagefolder.py), and on one without."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from .sub.b import g\n    return g()\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import a\nimport torch\n")
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text("import torch\nfrom . import c\n")
    (pkg / "sub" / "c.py").write_text("")
    assert import_graph(pkg)["pkg.sub.b"] == {"pkg.sub.c"} and find_cycle(import_graph(pkg)) is None


def test_no_core_module_imports_extras_or_exercises():
    """Not even inside a function, nor through importlib: the core stands alone (kd_utils/__init__'s
    lazy hook, which loads them by name on first use, is the one exception)."""
    graph = import_graph()
    for name in ["kd_utils", *(f"kd_utils.{m}" for m in CORE)]:
        assert not {m for m in graph[name] if m.startswith(OPTIONAL)}, name
    for m in CORE:
        calls = [node for node in ast.walk(ast.parse((PACKAGE / f"{m}.py").read_text()))
                 if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
                 in ("import_module", "__import__")]
        assert not calls, f"kd_utils/{m}.py loads a module by name"


def run_python(code):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_kd_utils_loads_the_core_only_and_extras_and_exercises_on_first_use():
    out = run_python("""
        import sys
        import kd_utils as kd
        print(sorted(m for m in sys.modules if m.startswith("kd_utils")))
        kd.exercises
        print("kd_utils.exercises" in sys.modules, "kd_utils.extras" in sys.modules)
        kd.extras.playground
        print(sorted(m for m in sys.modules if m.startswith("kd_utils.extras")))
        print(hasattr(kd, "no_such_thing"))
    """).splitlines()
    loaded = ast.literal_eval(out[0])
    assert "kd_utils.training" in loaded and set(loaded) <= {"kd_utils", *(f"kd_utils.{m}" for m in CORE)}
    assert out[1:] == ["True False", "['kd_utils.extras', 'kd_utils.extras.playground']", "False"]


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
