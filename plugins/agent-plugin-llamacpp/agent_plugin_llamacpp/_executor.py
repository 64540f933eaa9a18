"""`LlamaCppExecutor`: a GGUF model run in process by llama-cpp-python.

Everything that blocks (importing llama_cpp, assembling and loading the model,
tokenising, generating) runs in a worker thread (`anyio.to_thread.run_sync`), so
the event loop never stalls. The worker hands each streamed piece to the event
loop with `anyio.from_thread.run_sync`, so `TextDelta` events arrive while the
model generates, and it checks for cancellation after every sampled token
(`anyio.from_thread.check_cancelled`, plus a flag for native asyncio cancellation,
which AnyIO's cancel scopes do not see): a cancelled run stops generating within a
token, and the model is free for the next inference.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from attrs import frozen

from agent_kernel import Deltas, Message, Request, Response, ToolCall, Usage
from agent_kernel.errors import ConfigurationError, InferenceError

from ._messages import DEFAULT_SETTINGS, merge_settings, parse_arguments, to_chat_messages, tool_arguments
from ._models import ModelNotFound, ModelRef, check_model, resolve_model

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["InferenceStats", "LlamaCppExecutor", "choose_chat_format", "unload_models"]

log = logging.getLogger("agent_plugin_llamacpp")

_TAP = "_agent_kernel_tap"
_LOCK_POLL = 0.05


@frozen
class InferenceStats:
    """Figures of one inference.

    Attributes:
        prompt_tokens: tokens of the rendered prompt.
        output_tokens: tokens the model sampled (including an end-of-turn token).
        waited_seconds: time spent waiting for the model (another inference, loading).
        first_token_seconds: from the start of generation to the first streamed piece
            (prompt processing included); None if nothing was streamed.
        seconds: from the start of generation to its end.
    """

    prompt_tokens: int
    output_tokens: int
    waited_seconds: float
    first_token_seconds: float | None
    seconds: float

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed after the first piece (prompt processing excluded)."""
        if self.first_token_seconds is None or self.output_tokens < 2:
            return None
        span = self.seconds - self.first_token_seconds
        return (self.output_tokens - 1) / span if span > 0 else None


# ---------------------------------------------------------------------------------
# Loaded models, shared by every executor with the same configuration
# ---------------------------------------------------------------------------------


class _Shared:
    """One model configuration: its `Llama` once loaded, and the lock that serialises its use."""

    __slots__ = ("chat_format", "key", "llama", "load_seconds", "lock", "path")

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key
        self.lock = threading.Lock()  # held while loading or generating
        self.llama: Llama | None = None
        self.chat_format: str | None = None
        self.path: str | None = None
        self.load_seconds: float | None = None


_SHARED: dict[tuple[Any, ...], _Shared] = {}
_SHARED_LOCK = threading.Lock()


def _shared(key: tuple[Any, ...]) -> _Shared:
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = _Shared(key)
        return found


def unload_models() -> int:
    """Free every loaded model that is not generating right now; return how many were freed.

    Executors stay usable: the next inference loads their model again.
    """
    freed = 0
    with _SHARED_LOCK:
        shared = list(_SHARED.values())
    for entry in shared:
        if entry.lock.acquire(blocking=False):
            try:
                if entry.llama is not None:
                    llama, entry.llama = entry.llama, None
                    llama.close()
                    freed += 1
            finally:
                entry.lock.release()
    return freed


def choose_chat_format(metadata: Mapping[str, str], current: str | None) -> str | None:
    """The chat format for a model loaded with ``chat_format=None``.

    A GGUF that carries a chat template keeps what llama-cpp-python made of it;
    otherwise Gemma models get ``"gemma"`` and everything else ``"chatml"``
    (llama-cpp-python would guess ``llama-2``, and a Gemma base model then answers
    nothing).
    """
    if metadata.get("tokenizer.chat_template"):
        return current
    if metadata.get("general.architecture", "").lower().startswith("gemma"):
        return "gemma"
    return "chatml"


@functools.cache
def _llama_class() -> type[Llama]:
    """A `Llama` subclass whose completions report every sampled token to the current job."""
    from llama_cpp import Llama, StoppingCriteriaList

    class TappedLlama(Llama):
        def create_completion(self, *args: Any, **kwargs: Any) -> Any:
            tap = getattr(self, _TAP, None)
            if tap is not None:
                tap.begin()
                criteria = StoppingCriteriaList([tap])
                if kwargs.get("stopping_criteria"):
                    criteria.extend(kwargs["stopping_criteria"])
                kwargs["stopping_criteria"] = criteria
            return super().create_completion(*args, **kwargs)

    return TappedLlama


@functools.cache
def _chat_parameters() -> frozenset[str]:
    from llama_cpp import Llama

    names = inspect.signature(Llama.create_chat_completion).parameters
    return frozenset(n for n in names if n != "self")


@functools.cache
def _llama_parameters() -> frozenset[str]:
    from llama_cpp import Llama

    names = inspect.signature(Llama.__init__).parameters
    return frozenset(n for n, p in names.items() if n not in ("self", "model_path") and p.kind is p.KEYWORD_ONLY)


def _cancel_requested(stop: threading.Event) -> bool:
    """True when the task waiting on this worker thread has been cancelled.

    AnyIO cancel scopes are seen through `anyio.from_thread.check_cancelled`; a native
    asyncio cancellation (``asyncio.wait_for``, ``task.cancel()``) does not show there,
    so `infer` also sets `stop` when its await is interrupted.
    """
    if stop.is_set():
        return True
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # not in an AnyIO worker thread: nobody can cancel us
        return False
    except BaseException:  # the event loop's cancellation exception
        return True
    return False


class _Abandoned(Exception):
    """The awaiting task went away (native asyncio cancellation): the result has no reader."""


class _DeltaFailed(Exception):
    """`deltas.text` / `deltas.tool_call` raised in the event loop: re-raised as it was."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Call:
    __slots__ = ("announced", "arguments", "id", "name")

    def __init__(self, call_id: str) -> None:
        self.id = call_id
        self.name = ""
        self.arguments: list[str] = []
        self.announced = False


class _Job:
    """One inference: the stopping criterion that counts tokens and watches for
    cancellation, and the accumulator of the streamed answer."""

    def __init__(self, deltas: Deltas, stop: threading.Event, max_tokens: Any = None) -> None:
        self.deltas = deltas
        self.stop = stop
        self.max_tokens = max_tokens if isinstance(max_tokens, int) else None
        self.text: list[str] = []
        self.calls: dict[int, _Call] = {}
        self.finish: str | None = None
        self.prompt_tokens = 0
        self.output_tokens = 0
        self.stopped = False
        self.started = time.perf_counter()
        self.first: float | None = None
        self._base: int | None = None
        self._n = 0

    # -- the stopping criterion (called by llama.cpp's sampling loop, once per token)

    def begin(self) -> None:
        """A completion starts (``auto`` tool choice may run several)."""
        self._base = None
        self._n = 0

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        n = len(input_ids)
        if self._base is None:
            self._base = n
            self.prompt_tokens += n
        if n == self._base + self._n:  # a sampling step (not the check after the loop)
            self._n += 1
            self.output_tokens += 1
        if not self.stopped and _cancel_requested(self.stop):
            self.stopped = True
        return self.stopped  # sticky: llama.cpp asks again after its loop

    # -- the answer

    def _post(self, fn: Any, *args: Any) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        try:
            anyio.from_thread.run_sync(fn, *args)
        except Exception as exc:
            raise _DeltaFailed(exc) from exc

    def feed(self, chunk: Mapping[str, Any]) -> None:
        """Fold one ``chat.completion.chunk`` and pass its pieces to the event loop."""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            text = delta.get("content")
            if text:
                self.text.append(text)
                self._post(self.deltas.text, text)
            for position, part in enumerate(delta.get("tool_calls") or ()):
                index = part.get("index", position)
                call = self.calls.get(index)
                if call is None:
                    # llama-cpp-python's ids are ~50 characters; the model reads ids back, keep them short
                    call = self.calls[index] = _Call(f"call_{os.urandom(6).hex()}")
                function = part.get("function") or {}
                call.name = call.name or function.get("name") or ""
                fragment = function.get("arguments") or ""
                if fragment:
                    call.arguments.append(fragment)
                if fragment or not call.announced:
                    call.announced = True
                    self._post(self.deltas.tool_call, index, call.id, call.name, fragment)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def response(self, model: str) -> Response:
        calls = []
        for index in sorted(self.calls):
            part = self.calls[index]
            raw = "".join(part.arguments)
            calls.append(ToolCall(part.id, part.name, parse_arguments(raw, cut_off=self.cut_off)))
        if calls:
            stop = "tool_use"
        elif self.finish == "length":
            stop = "max_tokens"
        else:
            stop = "end_turn"
        usage = Usage(self.prompt_tokens, self.output_tokens, 1)
        return Response(Message("assistant", "".join(self.text), tuple(calls)), usage, stop, model)  # type: ignore[arg-type]

    @property
    def cut_off(self) -> bool:
        """Generation stopped at ``max_tokens`` (a forced call's finish reason does not say so)."""
        limit = self.max_tokens
        return self.finish == "length" or (limit is not None and self.output_tokens >= limit)

    def stats(self, waited: float) -> InferenceStats:
        end = time.perf_counter()
        first = None if self.first is None else self.first - self.started
        return InferenceStats(self.prompt_tokens, self.output_tokens, waited, first, end - self.started)


# ---------------------------------------------------------------------------------
# The executor
# ---------------------------------------------------------------------------------


class LlamaCppExecutor:
    """Runs inferences on a GGUF model in this process, with llama-cpp-python.

    Usage::

        executor = LlamaCppExecutor("gemma-3-270m", settings={"max_tokens": 64})
        await executor.load()  # optional: load now, not at the first inference

        class Local:  # a plugin serving the model string "local" with it
            @hookimpl
            def agent_register_models(self, models):
                models.add("local", executor)

    `LlamaCpp(...)` does this for a whole prefix (``llamacpp:<model>``).

    The model is loaded on first use (or by `load`), in a worker thread, once per
    configuration and process: executors with the same model and options share one
    `Llama` and take turns on it (one inference at a time per model).

    Args:
        model: a known model name (``"gemma-3-270m"``), or the path of a GGUF file.
            Checked at once (`ModelNotFound` for an unknown name, a missing file or
            a model package that is not installed); resolved and loaded on first use.
        chat_format: a llama-cpp-python chat format (``"gemma"``, ``"chatml"``,
            ``"chatml-function-calling"``, ``"llama-3"``...). None chooses: the GGUF's
            own chat template if it has one, else ``"gemma"`` for Gemma models and
            ``"chatml"`` for others (see `choose_chat_format`).
        n_ctx: the context window in tokens.
        n_threads: threads for generation. 1 is best on small, busy machines (two
            threads on two busy cores can be an order of magnitude slower).
        n_threads_batch: threads for prompt processing; defaults to `n_threads`
            (llama-cpp-python would take every core).
        seed: the sampling seed (llama.cpp's default when None).
        settings: default ``create_chat_completion`` arguments (``max_tokens``,
            ``temperature``, ``top_p``, ``stop``, ``seed``, ``response_format``...); the
            request's own settings (``Agent(settings=...)``) override them, None drops
            a key. ``max_tokens`` defaults to 512.
        cache_dir: where known models are assembled (see `model_cache_dir`).
        aliases: extra model names mapped to GGUF paths.
        name: the model name reported in responses (default: the known name or file stem).
        **llama_options: more ``Llama(...)`` arguments (``n_batch``, ``flash_attn``,
            ``n_gpu_layers``, ``use_mlock``...).

    Failures raise `InferenceError` (not retryable): the model cannot be resolved or
    loaded, a setting is unknown, the prompt does not fit in ``n_ctx``. Tool-call
    arguments that are not a JSON object (cut off by ``max_tokens``, or just wrong)
    do not fail the inference: they become ``{INVALID_ARGUMENTS: {"raw", "error"}}``
    and the plugin's ``agent_before_tool_execute`` blocks the call, so the model
    reads the error as the tool's result.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        chat_format: str | None = None,
        n_ctx: int = 4096,
        n_threads: int = 1,
        n_threads_batch: int | None = None,
        seed: int | None = None,
        settings: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        aliases: Mapping[str, str | os.PathLike[str]] | None = None,
        name: str | None = None,
        **llama_options: Any,
    ) -> None:
        self.ref: ModelRef = check_model(model, aliases=aliases)
        self.name = name or self.ref.label
        self.chat_format = chat_format
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_threads_batch = n_threads_batch or n_threads
        self.seed = seed
        self.settings: Mapping[str, Any] = dict(settings or {})
        self.cache_dir = cache_dir
        self.llama_options = dict(llama_options)
        try:
            merge_settings(self.settings)  # refuse reserved keys now
        except InferenceError as exc:
            raise ConfigurationError(str(exc)) from None
        source = str(self.ref.path) if self.ref.path is not None else f"known:{self.ref.spec}"
        key = (
            source,
            None if cache_dir is None else os.fspath(cache_dir),
            chat_format,
            n_ctx,
            n_threads,
            self.n_threads_batch,
            seed,
            tuple(sorted((k, repr(v)) for k, v in self.llama_options.items())),
        )
        self._shared = _shared(key)
        self.last_stats: InferenceStats | None = None

    def __repr__(self) -> str:
        return f"LlamaCppExecutor({self.ref.spec!r}, chat_format={self.chat_format!r}, n_ctx={self.n_ctx})"

    # ------------------------------------------------------------------ introspection

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._shared.llama is not None

    @property
    def model_path(self) -> str | None:
        """The GGUF file, once loaded."""
        return self._shared.path

    @property
    def chat_format_in_use(self) -> str | None:
        """The chat format the loaded model uses (None before loading)."""
        return self._shared.chat_format

    @property
    def load_seconds(self) -> float | None:
        """How long loading took (None before loading)."""
        return self._shared.load_seconds

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        """Load the model now (in a worker thread) instead of on the first inference."""
        await self._in_thread(self._load_blocking)

    def _load_blocking(self, stop: threading.Event) -> None:
        with self._locked(stop):
            self._ensure_loaded()

    async def _in_thread(self, work: Any, *args: Any) -> Any:
        """Run ``work(*args, stop)`` in a worker thread; `stop` is set if the await is interrupted."""
        stop = threading.Event()
        try:
            return await anyio.to_thread.run_sync(work, *args, stop)
        except BaseException:
            stop.set()  # a native asyncio cancellation abandons the thread: tell it to give up
            raise

    @contextmanager
    def _locked(self, stop: threading.Event) -> Iterator[None]:
        """Hold the model's lock; while waiting, give up if the caller is cancelled."""
        lock = self._shared.lock
        while not lock.acquire(timeout=_LOCK_POLL):
            if _cancel_requested(stop):
                anyio.from_thread.check_cancelled()  # raises an AnyIO cancellation
                raise _Abandoned
        try:
            yield
        finally:
            lock.release()

    def _ensure_loaded(self) -> Llama:
        shared = self._shared
        if shared.llama is not None:
            return shared.llama
        started = time.perf_counter()
        try:
            path = resolve_model(self.ref, cache_dir=self.cache_dir)
        except ModelNotFound as exc:
            raise InferenceError(str(exc)) from exc
        try:
            cls = _llama_class()
        except ImportError as exc:
            raise InferenceError(
                f"llama-cpp-python is not installed or does not import ({exc}): pip install llama-cpp-python"
            ) from exc
        known = _llama_parameters()
        unknown = sorted(set(self.llama_options) - known)
        if unknown:
            raise InferenceError(
                f"unknown Llama option(s) {', '.join(map(repr, unknown))}; Llama() takes: {', '.join(sorted(known))}"
            )
        options: dict[str, Any] = {
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "n_threads_batch": self.n_threads_batch,
            "verbose": False,
            **self.llama_options,
        }
        if self.seed is not None:
            options["seed"] = self.seed
        if self.chat_format is not None:
            options["chat_format"] = self.chat_format
        try:
            llama = cls(model_path=str(path), **options)
        except Exception as exc:
            raise InferenceError(f"llama.cpp could not load {str(path)!r}: {type(exc).__name__}: {exc}") from exc
        if self.chat_format is None:
            llama.chat_format = choose_chat_format(llama.metadata, llama.chat_format)
        shared.llama, shared.path, shared.chat_format = llama, str(path), llama.chat_format
        shared.load_seconds = time.perf_counter() - started
        log.debug("loaded %s (chat format %s) in %.2f s", path, llama.chat_format, shared.load_seconds)
        return llama

    # ------------------------------------------------------------------ inference

    async def infer(self, request: Request, deltas: Deltas) -> Response:
        """Run `request` in a worker thread, streaming its pieces into `deltas`."""
        result: Response = await self._in_thread(self._infer_blocking, request, deltas)
        return result

    def _infer_blocking(self, request: Request, deltas: Deltas, stop: threading.Event) -> Response:
        asked = time.perf_counter()
        with self._locked(stop):
            llama = self._ensure_loaded()
            chat_format = self._shared.chat_format
            settings = merge_settings(DEFAULT_SETTINGS, self.settings, request.settings, allowed=_chat_parameters())
            tools = tool_arguments(request.tools, request.tool_choice, chat_format)
            messages: Any = to_chat_messages(request.messages, chat_format)
            # llama-cpp-python cannot stream its "auto" tool choice (it raises once it picks a tool)
            stream = tools.get("tool_choice") != "auto"
            job = _Job(deltas, stop, settings.get("max_tokens"))
            waited = job.started - asked
            setattr(llama, _TAP, job)
            try:
                result: Any = llama.create_chat_completion(messages=messages, stream=stream, **tools, **settings)
                if stream:
                    try:
                        for chunk in result:
                            job.feed(chunk)
                            if job.stopped:
                                break
                    finally:
                        result.close()
                else:
                    job.feed(result)
            except _DeltaFailed as failed:
                raise failed.error from None
            except InferenceError:
                raise
            except ValueError as exc:  # e.g. "Requested tokens (5000) exceed context window of 4096"
                raise InferenceError(f"llama.cpp refused the request: {exc}") from exc
            except Exception as exc:
                raise InferenceError(f"llama.cpp failed: {type(exc).__name__}: {exc}") from exc
            finally:
                setattr(llama, _TAP, None)
        if job.stopped:
            anyio.from_thread.check_cancelled()  # raises an AnyIO cancellation out of the thread
            raise _Abandoned  # nobody waits for this answer any more
        response = job.response(self.name)
        stats = self.last_stats = job.stats(waited)
        log.debug(
            "%s: %d prompt + %d output tokens, first piece after %s s, %s tokens/s",
            self.name,
            stats.prompt_tokens,
            stats.output_tokens,
            None if stats.first_token_seconds is None else round(stats.first_token_seconds, 3),
            None if stats.tokens_per_second is None else round(stats.tokens_per_second, 1),
        )
        return response
