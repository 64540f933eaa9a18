"""Fake installed distributions, for testing entry-point discovery (like pytest's own tests)."""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["install_distribution"]


def install_distribution(
    site: Path,
    dist: str,
    entry: str,
    module: str,
    source: str,
    version: str = "1.0",
    group: str = "agent_kernel.plugins",
) -> Path:
    """Install a one-module distribution into the directory `site`, as an installer would.

    Writes ``<module>.py`` and a ``.dist-info`` with METADATA, entry_points.txt
    (``entry = module`` in `group`) and RECORD; put `site` on ``sys.path`` (e.g.
    ``monkeypatch.syspath_prepend(site)``) and importlib-metadata finds it like any
    installed package.

    Returns:
        The ``.dist-info`` directory.
    """
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry} = {module}\n")
    files = [f"{module}.py", f"{info.name}/METADATA", f"{info.name}/entry_points.txt", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in files))
    return info
