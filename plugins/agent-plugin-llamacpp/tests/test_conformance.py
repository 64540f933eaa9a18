"""The kernel's conformance check for LLM executors, on the real model."""

from __future__ import annotations

import functools
from typing import Any

from llamacpp_testkit import STORY

from agent_kernel.testing.conformance import check_llm_executor
from agent_plugin_llamacpp import LlamaCppExecutor

SETTINGS = {"max_tokens": 32, "temperature": 0}


def test_conforms_with_the_chosen_chat_format(run: Any) -> None:
    made: list[LlamaCppExecutor] = []

    def factory() -> LlamaCppExecutor:
        made.append(LlamaCppExecutor("gemma-3-270m"))
        return made[-1]

    # The text turn needs some text: Gemma 270M reliably says *something* to STORY.
    # The follow-up turn (tool choice "auto") is answered in text.
    run(functools.partial(check_llm_executor, factory, text_prompt=STORY, settings=SETTINGS))
    assert made[0].chat_format_in_use == "gemma"


async def test_conforms_with_chatml_function_calling(fresh_model: None) -> None:
    made: list[LlamaCppExecutor] = []

    def factory() -> LlamaCppExecutor:
        made.append(LlamaCppExecutor("gemma-3-270m", chat_format="chatml-function-calling"))
        return made[-1]

    # Here the follow-up turn's "auto" is llama-cpp-python's own choice between text and a call.
    await check_llm_executor(factory, text_prompt=STORY, settings=SETTINGS)
    assert made[0].chat_format_in_use == "chatml-function-calling"
