"""The ``tools`` entry-point plugin: a default tool strategy for every agent.

Installed with ``agent-plugin-tools``, it registers `Sequential` as the *default*
strategy, so any plugin that registers tools works even if it sets no strategy.
A strategy registered without ``default=True`` (for example by a `Toolbox`) wins.
Block it with ``Agent(..., block=["tools"])``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from agent_kernel import RuntimeRegistrar, hookimpl

from ._strategies import Sequential

name = "tools"


@hookimpl(trylast=True)
def agent_register_runtime(runtime: RuntimeRegistrar) -> None:
    runtime.set_tool_strategy(Sequential(), default=True)
