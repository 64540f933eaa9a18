"""The docs are checked: generated references are current, every hook is documented
and tested. (Their code runs in tests/test_snippets.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent_kernel import hookspecs

ROOT = Path(__file__).parent.parent
HOOK_NAMES = sorted(name for name in dir(hookspecs) if name.startswith("agent_") and callable(getattr(hookspecs, name)))


def test_generated_references_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_reference.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_is_documented_with_its_exact_signature(hook: str) -> None:
    import pluggy

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    spec = getattr(pm.hook, hook).spec
    signature = f"### `{hook}({', '.join(spec.argnames)})`"
    assert signature in (ROOT / "docs" / "hooks.md").read_text(), f"docs/hooks.md lacks {signature}"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_has_a_test(hook: str) -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}\b", sources), f"no test_hook_{hook} in tests/"
