"""The kernel's LLM-executor conformance check, against the fake Messages API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agent_kernel.testing.conformance import check_llm_executor
from agent_plugin_anthropic import AnthropicExecutor
from agent_plugin_anthropic.testing import FakeAnthropic, tool_use_stream


class Server:
    """Answers like the API would for each turn of the check, and keeps the bodies it saw."""

    def __init__(self, fixture: Callable[[str], Path]) -> None:
        self.fixture = fixture
        self.bodies: list[dict[str, Any]] = []

    def answer(self, request: httpx.Request) -> Any:
        body = json.loads(request.content)
        self.bodies.append(body)
        if body.get("tool_choice") == {"type": "tool", "name": "get_weather"}:
            return tool_use_stream(
                "get_weather",
                ['{"ci', 'ty": "Pa', 'ris"}'],
                call_id="toolu_weather_1",
                text=["I'll check", " the weather."],
            )
        return self.fixture("text_answer.sse")

    def executor(self) -> AnthropicExecutor:
        fake = FakeAnthropic(*[self.answer] * 3)
        return AnthropicExecutor("claude-x", api_key="sk-ant-test", transport=fake.transport)


async def check(server: Server) -> None:
    await check_llm_executor(server.executor, expect_text="Hello! How can I help you today?")


def test_check_llm_executor(run: Any, fixture: Callable[[str], Path]) -> None:
    server = Server(fixture)
    run(check, server)
    text_turn, tool_turn, follow_up = server.bodies
    assert "tools" not in text_turn  # the text turn offers no tools
    assert tool_turn["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert tool_turn["tools"][0]["name"] == "get_weather"
    assert follow_up["tool_choice"] == {"type": "auto"}
    assert follow_up["messages"][1]["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_weather_1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert follow_up["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_weather_1", "content": "Sunny, 21 °C.", "is_error": False}
        ],
    }
