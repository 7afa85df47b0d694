"""Packaging: environment.yml agrees with pyproject.toml; the two entry points exist."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name_and_spec(requirement: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", requirement)
    assert m, requirement
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _environment_yml_requirements() -> dict[str, str]:
    reqs: dict[str, str] = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        m = re.match(r"^\s+- ([^:#]+?)\s*$", line)
        if m:
            name, spec = _name_and_spec(m.group(1).replace("=", "==", 1)
                                        if re.match(r"^[\w\-]+=[^=]", m.group(1))
                                        else m.group(1))
            reqs[name] = spec
    return reqs


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = dict(_name_and_spec(r) for r in project["dependencies"])
    env = _environment_yml_requirements()
    env.pop("python"), env.pop("pip")
    assert env.pop("torch") == "==" + _dev_torch_pin().split("==")[1]  # the install's pin
    runtime.pop("torch")
    assert env == runtime


def _dev_torch_pin() -> str:
    found = re.findall(r'^TORCH_PIN="([^"]+)"', (ROOT / "dev").read_text(), flags=re.M)
    assert len(found) == 1, "./dev must set TORCH_PIN once"
    return found[0]


def test_torch_is_pinned_by_the_installer_not_by_the_package():
    """./dev installs the exact CPU build (an unpinned torch pulls a multi-GB CUDA build);
    the package itself asks only for a lower bound, so users keep the torch they have."""
    assert _dev_torch_pin() == "torch==2.13.0"
    assert '"$TORCH_PIN"' in (ROOT / "dev").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_reqs = [r for r in project["dependencies"] if _name_and_spec(r)[0] == "torch"]
    assert torch_reqs == ["torch>=2.1"]
    for extra, reqs in project["optional-dependencies"].items():
        for r in reqs:
            assert _name_and_spec(r)[0] != "torch", f"extra {extra!r} must not name torch again"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\s*(\./dev \w+)", setup, flags=re.M)
    assert commands == ["./dev lab", "./dev test"]
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
    assert os.access(ROOT / ".ci" / "run", os.X_OK) and os.access(ROOT / "dev", os.X_OK)


def test_dev_rejects_unknown_command():
    out = subprocess.run([str(ROOT / "dev"), "nonsense"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr


def test_only_the_readme_is_tracked_in_data():
    tracked = subprocess.run(["git", "ls-files", "data"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert tracked in ([], ["data/README.md"])
