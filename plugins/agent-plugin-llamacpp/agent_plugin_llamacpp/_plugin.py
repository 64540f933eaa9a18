"""`LlamaCpp`: the plugin object for configuring local models in code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agent_kernel import ModelRegistrar, ToolCall, hookimpl, patches
from agent_kernel.errors import ConfigurationError, InferenceError

from ._executor import LlamaCppExecutor
from ._messages import invalid_arguments_block, merge_settings
from .plugin import PREFIX


class LlamaCpp:
    """Serve ``llamacpp:<model>`` (or ``<prefix><model>``) with explicit options.

    Usage::

        Agent(model="llamacpp:gemma-3-270m", plugins=[LlamaCpp(settings={"max_tokens": 64})])
        Agent(model="local:qwen", plugins=[LlamaCpp(prefix="local:", models={"qwen": "/models/qwen.gguf"})])

    Args:
        prefix: the model-string prefix to serve. With the default ``"llamacpp:"``
            this plugin replaces the autoloaded ``llamacpp`` entry point's registration.
        name: the plugin name (default ``llamacpp-config``, or
            ``llamacpp-config[<prefix>]`` for another prefix).
        models: extra model names mapped to GGUF paths (``llamacpp:<name>``).
        **options: passed on to every `LlamaCppExecutor` (``chat_format``, ``n_ctx``,
            ``n_threads``, ``n_threads_batch``, ``seed``, ``settings``, ``cache_dir``,
            and ``Llama(...)`` arguments).

    Executors are made on first use of a model string and kept; the model behind
    them is loaded at its first inference and shared with every executor of the
    same configuration.

    Raises:
        ConfigurationError: ``settings`` sets a key the executor owns (``stream``,
            ``tools``, ``tool_choice``...).
    """

    def __init__(
        self,
        *,
        prefix: str = PREFIX,
        name: str | None = None,
        models: Mapping[str, str | os.PathLike[str]] | None = None,
        **options: Any,
    ) -> None:
        self.prefix = prefix
        self.name = name or ("llamacpp-config" if prefix == PREFIX else f"llamacpp-config[{prefix.rstrip(':')}]")
        self.models = dict(models or {})
        self.options = options
        try:
            merge_settings(options.get("settings") or {})
        except InferenceError as exc:
            raise ConfigurationError(str(exc)) from None
        self.executors: dict[str, LlamaCppExecutor] = {}

    def __repr__(self) -> str:
        return f"LlamaCpp(prefix={self.prefix!r})"

    def executor(self, model: str) -> LlamaCppExecutor:
        """The executor for `model` (the part after the prefix), made on first use.

        Raises:
            ModelNotFound: see `check_model`.
        """
        found = self.executors.get(model)
        if found is None:
            found = self.executors[model] = LlamaCppExecutor(model, aliases=self.models, **self.options)
        return found

    @hookimpl
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add_prefix(self.prefix, self.executor)

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return invalid_arguments_block(call)
