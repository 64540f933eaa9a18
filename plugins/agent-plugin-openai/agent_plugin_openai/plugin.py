"""The entry-point plugin ``openai``: serves ``openai:<model>`` from the environment.

Registered through the ``agent_kernel.plugins`` entry point, so any Agent with
autoload on understands ``Agent(model="openai:gpt-4o-mini")``. The base URL and key
come from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. To configure them in code, pass
`agent_plugin_openai.OpenAI(...)` in ``plugins=[...]``: this module's registration
is ``trylast`` and steps aside when another plugin already serves ``openai:``.

Loading this module imports neither httpx nor the executor; both load on first use.
"""

from __future__ import annotations

from agent_kernel import ModelExecutor, ModelRegistrar, ToolCall, hookimpl, patches

from ._wire import INVALID_ARGUMENTS

PREFIX = "openai:"


def _executor(model: str) -> ModelExecutor:
    from ._executor import OpenAIExecutor

    return OpenAIExecutor(model)


@hookimpl(trylast=True)
def agent_register_models(models: ModelRegistrar) -> None:
    if PREFIX not in models.prefixes:  # an explicit OpenAI(...) plugin took it
        models.add_prefix(PREFIX, _executor)


def invalid_arguments_block(call: ToolCall) -> list[patches.Patch] | None:
    """Block a call whose arguments the model sent as something other than a JSON object."""
    bad = call.arguments.get(INVALID_ARGUMENTS)
    if bad is None:
        return None
    raw, error = (bad.get("raw", ""), bad.get("error", "")) if isinstance(bad, dict) else (str(bad), "")
    shown = raw if len(raw) <= 500 else raw[:500] + "…"
    return [
        patches.Block(
            f"The arguments for {call.name!r} were not a valid JSON object ({error}); the tool did not run. "
            f"Call it again with a JSON object matching its parameters. You sent: {shown}"
        )
    ]


@hookimpl
def agent_before_tool_execute(call: ToolCall) -> list[patches.Patch] | None:
    return invalid_arguments_block(call)
