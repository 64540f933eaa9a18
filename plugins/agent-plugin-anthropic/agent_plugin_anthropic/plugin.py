"""The entry-point plugin ``anthropic``: serves ``anthropic:<model>`` from the environment.

Registered through the ``agent_kernel.plugins`` entry point, so any Agent with
autoload on understands ``Agent(model="anthropic:claude-sonnet-4-5")``. The key and
base URL come from ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``. To configure them
in code, pass `agent_plugin_anthropic.Anthropic(...)` in ``plugins=[...]``: this
module's registration is ``trylast`` and steps aside when another plugin already
serves ``anthropic:``.

Loading this module imports neither httpx nor the executor; both load on first use.
"""

from __future__ import annotations

from agent_kernel import ModelExecutor, ModelRegistrar, hookimpl

PREFIX = "anthropic:"


def _executor(model: str) -> ModelExecutor:
    from ._executor import AnthropicExecutor

    return AnthropicExecutor(model)


@hookimpl(trylast=True)
def agent_register_models(models: ModelRegistrar) -> None:
    if PREFIX not in models.prefixes:  # an explicit Anthropic(...) plugin took it
        models.add_prefix(PREFIX, _executor)
