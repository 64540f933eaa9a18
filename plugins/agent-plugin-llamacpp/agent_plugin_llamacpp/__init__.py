"""agent-plugin-llamacpp: local GGUF models in process, with llama-cpp-python.

``Agent(model="llamacpp:gemma-3-270m")`` or ``Agent(model="llamacpp:/path/to/model.gguf")``
works once this distribution is installed (the ``llamacpp`` entry point). Pass
`LlamaCpp(...)` in ``plugins=[...]`` to configure it in code, or use
`LlamaCppExecutor` directly. llama-cpp-python is imported on first use.
"""

from typing import Any

from attrs import Factory, frozen

from ._executor import InferenceStats as InferenceStats
from ._executor import LlamaCppExecutor as LlamaCppExecutor
from ._executor import choose_chat_format as choose_chat_format
from ._executor import unload_models as unload_models
from ._messages import DEFAULT_SETTINGS as DEFAULT_SETTINGS
from ._messages import INVALID_ARGUMENTS as INVALID_ARGUMENTS
from ._models import CACHE_ENV as CACHE_ENV
from ._models import KNOWN_MODELS as KNOWN_MODELS
from ._models import KnownModel as KnownModel
from ._models import ModelNotFound as ModelNotFound
from ._models import check_model as check_model
from ._models import model_cache_dir as model_cache_dir
from ._models import resolve_model as resolve_model
from ._plugin import LlamaCpp as LlamaCpp


@frozen
class Settings:
    """``[plugins.llamacpp]`` in ``agent.toml``: the arguments of `LlamaCpp`.

    Found by agent-kernel's configuration convention (the package's ``Settings``
    attribute); it is not part of ``__all__``.

    Attributes:
        prefix: the model-string prefix served.
        models: extra model names mapped to GGUF paths.
        chat_format: llama.cpp's chat format (default: chosen from the model).
        n_ctx: the context window in tokens (default: the executor's).
        n_threads: CPU threads (default: llama.cpp's).
        seed: the sampling seed.
        settings: sampling settings (``temperature``, ``max_tokens``...).
        cache_dir: where downloaded models are kept.
    """

    prefix: str = "llamacpp:"
    models: dict[str, str] = Factory(dict)
    chat_format: str | None = None
    n_ctx: int | None = None
    n_threads: int | None = None
    seed: int | None = None
    settings: dict[str, Any] = Factory(dict)
    cache_dir: str | None = None

    def plugin(self) -> LlamaCpp:
        """The configured `LlamaCpp` plugin."""
        options: dict[str, Any] = {
            key: value
            for key, value in (
                ("chat_format", self.chat_format),
                ("n_ctx", self.n_ctx),
                ("n_threads", self.n_threads),
                ("seed", self.seed),
                ("settings", self.settings or None),
                ("cache_dir", self.cache_dir),
            )
            if value is not None
        }
        return LlamaCpp(prefix=self.prefix, models=self.models, **options)


__version__ = "0.1.0"

__all__ = [
    "CACHE_ENV",
    "DEFAULT_SETTINGS",
    "INVALID_ARGUMENTS",
    "KNOWN_MODELS",
    "InferenceStats",
    "KnownModel",
    "LlamaCpp",
    "LlamaCppExecutor",
    "ModelNotFound",
    "check_model",
    "choose_chat_format",
    "model_cache_dir",
    "resolve_model",
    "unload_models",
]
