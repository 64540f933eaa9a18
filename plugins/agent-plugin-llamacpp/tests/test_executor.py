"""The executor on the real model: threads, streaming, the per-model lock, cancellation, usage, errors."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import anyio
import pytest
from llamacpp_testkit import ADD, ADD_SPEC, STORY, Recorder, gemma, request

from agent_kernel.errors import ConfigurationError, InferenceError
from agent_plugin_llamacpp import INVALID_ARGUMENTS, LlamaCpp, LlamaCppExecutor, unload_models


async def _ticking(work: Any, period: float = 0.01) -> tuple[Any, list[float], float]:
    """Run `work()` while a ticker task sleeps `period` in a loop; return (result, gaps, duration)."""
    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(period)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(period * 3)
        started = time.perf_counter()
        try:
            result = await work()
        finally:
            duration = time.perf_counter() - started
            done.set()
    return result, gaps, duration


def test_the_event_loop_stays_responsive_while_the_model_loads_and_generates(run: Any, fresh_model: None) -> None:
    # n_ctx=1024 is a configuration no other test uses: this test pays for the load too.
    executor = gemma(n_ctx=1024, settings={"max_tokens": 48})
    assert not executor.loaded

    async def main() -> tuple[Any, list[float], float]:
        recorder = Recorder()
        return await _ticking(lambda: executor.infer(request(STORY), recorder))

    response, gaps, duration = run(main)
    assert executor.loaded and response.usage.output_tokens > 0
    # The work took long enough that a blocking call would have shown as one huge gap...
    assert duration > 0.5, f"load + generation took only {duration:.2f} s: the test proves nothing"
    # ...but the ticker kept ticking every ~10 ms throughout.
    assert max(gaps) < 0.25, f"the event loop stalled for {max(gaps):.3f} s (duration {duration:.2f} s)"
    assert len(gaps) > duration / 0.01 / 4


async def test_text_deltas_arrive_while_the_model_generates(recorder: Recorder) -> None:
    executor = gemma(settings={"max_tokens": 32})
    await executor.load()
    started = time.perf_counter()
    response = await executor.infer(request(STORY), recorder)
    finished = time.perf_counter()
    assert response.message.content, "Gemma answered nothing to a prompt it always echoes"
    assert "".join(recorder.texts) == response.message.content
    assert len(recorder.texts) >= 2
    times = [t for t, _, _ in recorder.pieces]
    # Streamed, not delivered in one burst at the end: pieces spread over the generation.
    assert times[-1] - times[0] > 0.3 * (finished - started) > 0, (times[0] - started, times[-1] - started, finished)
    stats = executor.last_stats
    assert stats is not None and stats.first_token_seconds is not None
    assert stats.first_token_seconds < stats.seconds
    assert stats.tokens_per_second is not None and stats.tokens_per_second > 0


async def test_usage_counts_the_prompt_and_every_sampled_token(recorder: Recorder) -> None:
    executor = gemma(settings={"max_tokens": 12})
    response = await executor.infer(request(STORY), recorder)
    # The prompt count agrees with llama-cpp-python's own (non-streaming) count of the same prompt.
    llama = executor._shared.llama
    assert llama is not None

    def own_count() -> int:
        with executor._locked(threading.Event()):
            result = llama.create_chat_completion([{"role": "user", "content": STORY}], max_tokens=1)
        return int(result["usage"]["prompt_tokens"])

    assert response.usage.input_tokens == await anyio.to_thread.run_sync(own_count)
    assert response.usage.requests == 1
    # Every sampled token is counted (the end-of-turn token too): at most max_tokens, and
    # at least one per streamed piece.
    assert len(recorder.texts) <= response.usage.output_tokens <= 12
    if response.stop_reason == "max_tokens":
        assert response.usage.output_tokens == 12


async def test_executors_with_the_same_configuration_share_one_loaded_model() -> None:
    first = gemma(settings={"max_tokens": 4})
    await first.load()
    second = LlamaCppExecutor("gemma-3-270m", settings={"max_tokens": 99, "temperature": 1.0})
    assert second.loaded and second.load_seconds == first.load_seconds  # settings are per request, not per model
    assert second._shared is first._shared
    other = gemma(n_ctx=512)
    assert not other.loaded and other._shared is not first._shared


async def test_one_inference_at_a_time_per_model() -> None:
    executor = gemma(settings={"max_tokens": 16})
    await executor.load()
    recorders = [Recorder("a"), Recorder("b")]
    async with anyio.create_task_group() as tg:
        for rec in recorders:
            tg.start_soon(executor.infer, request(STORY), rec)
    a, b = ([t for t, _, _ in rec.pieces] for rec in recorders)
    assert a and b
    first, second = (a, b) if a[0] < b[0] else (b, a)
    assert first[-1] < second[0], "the two inferences generated at the same time on one model"


def test_cancelling_mid_generation_stops_the_worker_thread(run: Any) -> None:
    executor = gemma(settings={"max_tokens": 400})

    async def main() -> tuple[float, int, int, Any]:
        await executor.load()
        recorder = Recorder()
        scope = anyio.CancelScope()

        async def generate() -> None:
            with scope:
                await executor.infer(request(STORY), recorder)

        async with anyio.create_task_group() as tg:
            tg.start_soon(generate)
            with anyio.fail_after(60):
                while len(recorder.pieces) < 2:
                    await anyio.sleep(0.005)
            at_cancel = len(recorder.pieces)
            cancelled_at = time.perf_counter()
            scope.cancel()
        stopped_after = time.perf_counter() - cancelled_at
        assert scope.cancelled_caught
        # The model is free: the next inference does not wait for the cancelled one.
        after = Recorder()
        response = await executor.infer(request(STORY, max_tokens=8), after)
        return stopped_after, at_cancel, len(recorder.pieces), response

    stopped_after, at_cancel, total, response = run(main)
    # 400 tokens take seconds; the cancelled inference ended within a few tokens.
    assert stopped_after < 0.5, f"the cancelled inference took {stopped_after:.2f} s to end"
    assert total - at_cancel <= 5
    assert response.usage.output_tokens <= 8
    assert executor.last_stats is not None and executor.last_stats.waited_seconds < 0.2


def test_a_native_asyncio_cancellation_stops_the_worker_thread_too() -> None:
    # asyncio.wait_for cancels the task natively, which AnyIO's cancel scopes do not see.
    executor = gemma(settings={"max_tokens": 400})

    async def main() -> tuple[float, int, int, float]:
        await executor.load()
        long, waiting = Recorder(), Recorder()
        started = time.perf_counter()
        generating = asyncio.ensure_future(executor.infer(request(STORY), long))
        with pytest.raises(TimeoutError):  # the second one waits for the model, and gives up too
            await asyncio.wait_for(executor.infer(request(STORY), waiting), 0.5)
        generating.cancel()
        with pytest.raises(asyncio.CancelledError):
            await generating
        at_cancel = len(long.pieces)
        await asyncio.sleep(0.3)
        response = await executor.infer(request(STORY, max_tokens=4), Recorder())
        assert response.usage.output_tokens <= 4
        stats = executor.last_stats
        assert stats is not None
        return time.perf_counter() - started, at_cancel, len(long.pieces) + len(waiting.pieces), stats.waited_seconds

    _, at_cancel, pieces_after, waited = asyncio.run(main())
    assert waited < 0.2, f"the next inference waited {waited:.2f} s: a cancelled one kept the model"
    assert pieces_after - at_cancel <= 5  # generation stopped within a few tokens; the waiter never ran


async def test_a_task_waiting_for_the_model_can_be_cancelled() -> None:
    executor = gemma(settings={"max_tokens": 200})
    await executor.load()
    busy = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.infer, request(STORY), busy)
        with anyio.fail_after(60):
            while not busy.pieces:
                await anyio.sleep(0.005)
        started = time.perf_counter()
        with anyio.move_on_after(0.2) as waiting:
            await executor.infer(request(STORY), Recorder())
        gave_up_after = time.perf_counter() - started
        tg.cancel_scope.cancel()
    assert waiting.cancelled_caught
    assert gave_up_after < 0.5, f"the waiting task took {gave_up_after:.2f} s to give up"


async def test_a_forced_tool_call_streams_its_arguments(recorder: Recorder) -> None:
    executor = gemma(settings={"max_tokens": 48, "temperature": 0})
    response = await executor.infer(request(ADD, tools=(ADD_SPEC,), tool_choice="add"), recorder)
    (call,) = response.message.tool_calls
    assert call.name == "add" and set(call.arguments) == {"a", "b"}
    assert all(isinstance(v, int) for v in call.arguments.values())  # the grammar follows the schema
    assert response.stop_reason == "tool_use" and response.message.content == ""
    assert len(recorder.calls) > 1
    assert {(index, call_id, name) for index, call_id, name, _ in recorder.calls} == {(0, call.id, "add")}
    assert json.loads("".join(fragment for *_, fragment in recorder.calls)) == dict(call.arguments)
    assert call.id.startswith("call_") and len(call.id) < 20


async def test_tool_arguments_cut_off_by_max_tokens_come_back_marked_invalid(recorder: Recorder) -> None:
    executor = gemma(settings={"max_tokens": 3})
    response = await executor.infer(request(ADD, tools=(ADD_SPEC,), tool_choice="add"), recorder)
    (call,) = response.message.tool_calls
    assert call.name == "add" and set(call.arguments) == {INVALID_ARGUMENTS}
    bad = call.arguments[INVALID_ARGUMENTS]
    assert bad["raw"] and "invalid JSON" in bad["error"] and "cut off by max_tokens" in bad["error"]
    assert response.stop_reason == "tool_use"


async def test_a_prompt_longer_than_the_context_is_a_clear_error(recorder: Recorder) -> None:
    executor = gemma()
    with pytest.raises(InferenceError, match=r"refused the request: Requested tokens \(\d+\) exceed context window"):
        await executor.infer(request("cat " * 5000), recorder)
    response = await executor.infer(request(STORY, max_tokens=4), recorder)  # still usable
    assert response.usage.output_tokens <= 4


async def test_bad_settings_and_options_are_refused(recorder: Recorder) -> None:
    with pytest.raises(ConfigurationError, match=r"'stream' is set by the llama\.cpp executor itself"):
        LlamaCppExecutor("gemma-3-270m", settings={"stream": False})
    with pytest.raises(ConfigurationError, match=r"'tools' is set by the llama\.cpp executor itself"):
        LlamaCpp(settings={"tools": []})
    executor = gemma()
    with pytest.raises(InferenceError, match=r"unknown llama\.cpp setting 'max_completion_tokens'"):
        await executor.infer(request(STORY, max_completion_tokens=5), recorder)
    with pytest.raises(InferenceError, match=r"unknown Llama option\(s\) 'n_thread'; Llama\(\) takes: .*n_threads"):
        await gemma(n_thread=2).infer(request(STORY), recorder)
    assert not recorder.pieces


async def test_an_exception_from_the_deltas_sink_propagates_unchanged() -> None:
    class Broken(Recorder):
        def text(self, text: str) -> None:
            raise KeyError("sink broke")

    executor = gemma()
    with pytest.raises(KeyError, match="sink broke"):
        await executor.infer(request(STORY), Broken())
    response = await executor.infer(request(STORY, max_tokens=4), Recorder())  # the model was released
    assert response.usage.output_tokens <= 4


async def test_unloading_frees_the_model_and_the_next_inference_loads_it_again(fresh_model: None) -> None:
    executor = gemma(n_ctx=512, settings={"max_tokens": 4})
    await executor.load()
    assert executor.loaded
    assert unload_models() >= 1
    assert not executor.loaded
    response = await executor.infer(request(STORY), Recorder())
    assert executor.loaded and response.usage.input_tokens > 0
