"""agent-plugin-llamacpp: local GGUF models in process, with llama-cpp-python.

``Agent(model="llamacpp:gemma-3-270m")`` or ``Agent(model="llamacpp:/path/to/model.gguf")``
works once this distribution is installed (the ``llamacpp`` entry point). Pass
`LlamaCpp(...)` in ``plugins=[...]`` to configure it in code, or use
`LlamaCppExecutor` directly. llama-cpp-python is imported on first use.
"""

from ._executor import InferenceStats as InferenceStats
from ._executor import LlamaCppExecutor as LlamaCppExecutor
from ._executor import choose_chat_format as choose_chat_format
from ._executor import unload_models as unload_models
from ._messages import DEFAULT_SETTINGS as DEFAULT_SETTINGS
from ._models import CACHE_ENV as CACHE_ENV
from ._models import KNOWN_MODELS as KNOWN_MODELS
from ._models import KnownModel as KnownModel
from ._models import ModelNotFound as ModelNotFound
from ._models import check_model as check_model
from ._models import model_cache_dir as model_cache_dir
from ._models import resolve_model as resolve_model
from ._plugin import LlamaCpp as LlamaCpp

__version__ = "0.1.0"

__all__ = [
    "CACHE_ENV",
    "DEFAULT_SETTINGS",
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
