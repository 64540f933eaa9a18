"""The entry-point plugin ``llamacpp``: serves ``llamacpp:<model or path>``.

Registered through the ``agent_kernel.plugins`` entry point, so any Agent with
autoload on understands ``Agent(model="llamacpp:gemma-3-270m")`` or
``Agent(model="llamacpp:/models/qwen2.5-0.5b-instruct-q4_k_m.gguf")`` with the
executor's defaults. To configure it in code, pass `agent_plugin_llamacpp.LlamaCpp(...)`
in ``plugins=[...]``: this module's registration is ``trylast`` and steps aside
when another plugin already serves ``llamacpp:``.

Loading this module imports neither llama-cpp-python nor the executor; the model
string is checked when the run first needs it, the model loaded at its first inference.

A tool call whose arguments the model wrote as something other than a JSON object is
blocked here (``agent_before_tool_execute``): the model reads the parse error as the
tool's result and can call again, as with agent-plugin-openai.
"""

from __future__ import annotations

from agent_kernel import ModelExecutor, ModelRegistrar, ToolCall, hookimpl, patches

from ._messages import invalid_arguments_block

PREFIX = "llamacpp:"


def _executor(model: str) -> ModelExecutor:
    from ._executor import LlamaCppExecutor

    return LlamaCppExecutor(model)


@hookimpl(trylast=True)
def agent_register_models(models: ModelRegistrar) -> None:
    if PREFIX not in models.prefixes:  # an explicit LlamaCpp(...) plugin took it
        models.add_prefix(PREFIX, _executor)


@hookimpl
def agent_before_tool_execute(call: ToolCall) -> list[patches.Patch] | None:
    return invalid_arguments_block(call)
