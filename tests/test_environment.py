"""The pip pins (requirements.txt) and the conda pins (environment.yml) must not drift apart."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_requirements_and_environment_yml_pin_the_same_versions():
    requirements = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = _pins(p for p in pip_section if not p.startswith("-e"))
    assert requirements == conda
    assert requirements["torch"] == "2.13.0"
    assert "python=3.11" in env["dependencies"]


def test_every_requirement_is_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"unpinned requirement: {line}"


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name, pinned in _pins((ROOT / "requirements.txt").read_text().splitlines()).items():
        assert version(name).split("+")[0] == pinned, name


def _name(requirement: str) -> str:
    return requirement.split("==", 1)[0].strip().lower().replace("_", "-")


def _pyproject():
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_pyproject_declares_the_pins_of_requirements_txt():
    """``pip install .[test]`` installs exactly the pins of requirements.txt: runtime dependencies
    plus the notebooks/docs/test extras, the same versions, nothing more or less."""
    project = _pyproject()
    extras = project["optional-dependencies"]
    assert extras["test"][0] == "asd_utils[notebooks,docs]"
    declared = [*project["dependencies"], *extras["notebooks"], *extras["docs"], *extras["test"][1:]]
    assert all("==" in r for r in declared), declared
    assert len({_name(r) for r in declared}) == len(declared)  # each once
    assert _pins(declared) == _pins((ROOT / "requirements.txt").read_text().splitlines())


def _third_party_imports(folder: str) -> dict[str, set[str]]:
    """``{top-level module: {files importing it}}`` for the modules imported in ``folder`` that are
    neither the standard library, the package, nor a module of ``folder`` itself."""
    import ast
    import sys

    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "asd_utils" or (ROOT / folder / f"{top}.py").exists():
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_library_is_pinned_and_the_lower_layers_need_no_extra():
    """Each library that asd_utils or the benchmarks import is pinned in requirements.txt (by its
    distribution's name); what asd_utils imports below the notebook layer is a runtime dependency
    of pyproject, so ``pip install .`` (no extras) imports every layer up to asd_utils.methods."""
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    pinned = _pins((ROOT / "requirements.txt").read_text().splitlines())
    runtime = {_name(r) for r in _pyproject()["dependencies"]}
    for folder in ("asd_utils", "benchmarks"):
        for module, files in _third_party_imports(folder).items():
            names = {_name(d) for d in distributions.get(module, [module])}
            assert names & set(pinned), f"{module} (imported by {sorted(files)}) is not pinned in requirements.txt"
            lower = [f for f in files if not f.startswith(("asd_utils/notebook/", "asd_utils/run/"))]
            if folder == "asd_utils" and lower:
                assert names & runtime, f"{module} (imported by {lower}) is not a runtime dependency in pyproject"


def test_lock_file_pins_every_requirement_at_its_version():
    """requirements.lock pins each installed package exactly, the project's pins at their versions,
    and not the project itself."""
    lines = [line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all("==" in line and " @ " not in line and not line.startswith("-") for line in lines), lines
    lock = _pins(lines)
    assert len(lock) == len(lines) and "asd-utils" not in lock
    for name, version in _pins((ROOT / "requirements.txt").read_text().splitlines()).items():
        assert lock.get(name) == version, name


def test_license_file_matches_the_declared_licence():
    """pyproject declares MIT (SPDX) and ships LICENSE, which is the MIT text; CITATION.cff agrees."""
    project = _pyproject()
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["license"] == "MIT"


def test_package_data_covers_the_configs_and_the_catalogue():
    """The wheel carries every data file the package reads: configs/*.yaml and notebook/catalogue.yaml."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["asd_utils"]
    package = ROOT / "asd_utils"
    data = sorted(str(p.relative_to(package)) for p in package.rglob("*")
                  if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts)
    assert "notebook/catalogue.yaml" in data and any(d.startswith("configs/") for d in data)
    missing = [d for d in data if not any(fnmatch.fnmatch(d, pattern) for pattern in patterns)]
    assert not missing, f"data files left out of the package data: {missing}"
