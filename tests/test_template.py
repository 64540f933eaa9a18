"""The plugin template (templates/agent-plugin): generated, installed and tested for real.

The plugin is generated with the very `copier copy` command docs/tutorial.md shows,
installed (``pip install --no-deps --no-build-isolation -e``, offline) into a throwaway virtual environment that
sees the dev environment's packages through a ``.pth`` file, and its own tests run
there with pytest. The dev environment never sees the generated plugin.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).parent.parent
TEMPLATE = ROOT / "templates" / "agent-plugin"
BIN = Path(sys.executable).parent
NAME_RE = r"[a-z][a-z0-9]*(-[a-z0-9]+)*"
INVALID = "is not a plugin name"


def documented_command() -> list[str]:
    """The one ``copier copy`` command of docs/tutorial.md, as an argument list."""
    lines = [
        line for line in (ROOT / "docs" / "tutorial.md").read_text().splitlines() if line.startswith("copier copy")
    ]
    assert len(lines) == 1, f"docs/tutorial.md should show one `copier copy` command, shows {lines}"
    return shlex.split(lines[0])


def copier(name: str, dest: Path) -> subprocess.CompletedProcess[str]:
    """Run the documented command from the repository root, for `name`, into `dest`."""
    argv = documented_command()
    assert argv[-2] == "templates/agent-plugin" and "name=shout" in argv, argv
    argv = [str(BIN / "copier"), *(f"name={name}" if a == "name=shout" else a for a in argv[1:-1]), str(dest)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


def generate(name: str, dest: Path) -> Path:
    result = copier(name, dest)
    assert result.returncode == 0, result.stderr
    return dest


def run(argv: list[str | Path], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `argv` at `cwd` without the caller's AGENT_KERNEL_*, PYTHON* and VIRTUAL_ENV variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_KERNEL_", "PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


class Environment:
    """A throwaway virtualenv that also sees the dev environment's site-packages."""

    def __init__(self, root: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
        self.python = root / "bin" / "python"
        purelib = run([self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root)
        dev_site = sysconfig.get_paths()["purelib"]
        # addsitedir (not a bare path) so the dev environment's own .pth files, such
        # as the kernel's editable install, are processed too.
        Path(purelib.stdout.strip(), "_agent_kernel_dev.pth").write_text(
            f"import site; site.addsitedir({dev_site!r})\n"
        )

    def install(self, project: Path) -> None:
        result = run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                self.python,
                "install",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-e",
                project,
            ],
            project,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr


class Generated(NamedTuple):
    project: Path
    files: list[str]  # as generated, before anything ran in it
    env: Environment


def tree(project: Path) -> list[str]:
    return sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def shout(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """The documented plugin, generated and installed into its own environment."""
    base = tmp_path_factory.mktemp("template")
    project = generate("shout", base / "agent-plugin-shout")
    files = tree(project)
    env = Environment(base / "env")
    env.install(project)
    return Generated(project, files, env)


def test_generated_plugin_passes_its_own_tests(shout: Generated) -> None:
    project, _, env = shout
    result = run([env.python, "-m", "pytest", "-v"], project, timeout=900)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    ran = re.findall(r"^tests/test_plugin\.py::(\w+)", result.stdout, re.MULTILINE)
    assert ran[0] == "test_agent_kernel_plugins_discovers_the_plugin", ran
    assert re.search(r"^=+ 12 passed", result.stdout, re.MULTILINE), result.stdout[-2000:]


def test_the_installed_plugin_is_listed_with_its_hook(shout: Generated) -> None:
    project, _, env = shout
    result = run([env.python, "-m", "agent_kernel", "plugins", "--hook", "agent_before_inference"], project)
    assert result.returncode == 0, result.stderr
    assert '"name": "shout"' in result.stdout and '"distribution": "agent-plugin-shout"' in result.stdout


def test_the_dev_environment_never_sees_the_generated_plugin(shout: Generated) -> None:
    assert importlib.util.find_spec("agent_plugin_shout") is None
    names = {ep.name for ep in importlib.metadata.entry_points(group="agent_kernel.plugins")}
    assert "shout" not in names


def test_the_discovery_test_fails_when_the_entry_point_is_wrong(tmp_path: Path) -> None:
    """The generated first test really checks the entry point, not only the import."""
    project = generate("shout", tmp_path / "agent-plugin-shout")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert 'shout = "agent_plugin_shout.plugin:plugin"' in text
    pyproject.write_text(text.replace('shout = "agent_plugin_shout.plugin:plugin"', 'shout = "agent_plugin_shout"'))
    env = Environment(tmp_path / "env")
    env.install(project)
    result = run([env.python, "-m", "pytest", "-q", "-k", "discovers"], project, timeout=300)
    assert result.returncode == 1, result.stdout[-4000:]
    assert "assert [] == ['agent_before_inference']" in result.stdout, result.stdout[-4000:]


def test_generated_code_is_clean(shout: Generated) -> None:
    project = shout.project
    checks: list[list[str | Path]] = [[BIN / "ruff", "check", "."], [BIN / "ruff", "format", "--check", "."]]
    for argv in checks:
        result = run(argv, project)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    result = run([sys.executable, "-m", "mypy"], project, timeout=600)
    assert result.returncode == 0, result.stdout


def test_generated_tree(shout: Generated) -> None:
    assert shout.files == [
        ".copier-answers.yml",
        ".gitignore",
        "README.md",
        "agent_plugin_shout/__init__.py",
        "agent_plugin_shout/_plugin.py",
        "agent_plugin_shout/plugin.py",
        "agent_plugin_shout/py.typed",
        "pyproject.toml",
        "tests/conftest.py",
        "tests/test_plugin.py",
    ]
    assert "name: shout" in (shout.project / ".copier-answers.yml").read_text()


def test_a_hyphenated_name_gives_valid_python_names(tmp_path: Path) -> None:
    project = generate("house-rules", tmp_path / "agent-plugin-house-rules")
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "agent-plugin-house-rules"' in pyproject
    assert 'house-rules = "agent_plugin_house_rules.plugin:plugin"' in pyproject
    check = "import agent_plugin_house_rules as m; p = m.plugin.plugin; print(type(p).__name__, p.name, m.HouseRules('x').note)"
    result = run([sys.executable, "-c", f"import agent_plugin_house_rules.plugin; {check}"], project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["HouseRules", "house-rules", "x"]
    lint = run([BIN / "ruff", "check", "."], project)
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("bad", ["Shout", "2fast", "two--dashes", "-lead", "trail-", "with space", "snake_case", "é"])
def test_a_bad_name_is_refused_with_the_reason(bad: str, tmp_path: Path) -> None:
    result = copier(bad, tmp_path / "out")
    assert result.returncode != 0
    assert INVALID in result.stderr, result.stderr
    assert not (tmp_path / "out" / "pyproject.toml").exists()


def _validates(name: str, dest: Path) -> bool:
    """Whether the template accepts `name` (copier's Python API, nothing written)."""
    from copier import run_copy

    try:
        run_copy(str(TEMPLATE), dest, data={"name": name}, defaults=True, pretend=True, quiet=True)
    except ValueError as exc:
        assert INVALID in str(exc), exc
        return False
    return True


@given(st.from_regex(rf"\A{NAME_RE}\Z") | st.text(alphabet="abz09-_ A", max_size=8))
def test_the_template_accepts_exactly_the_valid_names(name: str) -> None:
    """Property: the template's validator agrees with the documented name grammar."""
    import tempfile

    with tempfile.TemporaryDirectory() as dest:
        assert _validates(name, Path(dest)) == bool(re.fullmatch(NAME_RE, name)), name
