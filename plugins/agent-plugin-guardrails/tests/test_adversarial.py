"""Redaction takes time linear in the text: 1 MB of adversarial text is redacted fast.

The guard is generous (`GUARD` seconds for 1 MB, so a loaded machine does not fail
it): a rule that backtracks quadratically takes minutes on these texts (the old
``password`` rule took 11 s on 10 kB of ``"a-" * N``). The measured figures are
printed by ``bench_redaction.py``.
"""

from __future__ import annotations

import random
import string
import time

import pytest

from agent_kernel import ToolResult
from agent_kernel.journal import ToolDone
from agent_plugin_guardrails import RULES, Redactor, redact_structure
from agent_plugin_guardrails.redaction import REMEMBERED

MB = 1_000_000
GUARD = 2.0  # seconds; expected well under 0.1 s


def repeat(unit: str, size: int = MB) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def base64_run(size: int = MB) -> str:
    return "".join(random.Random(7).choices(string.ascii_letters + string.digits + "+/", k=size))


SHAPES = {
    "a-": repeat("a-"),
    "a_": repeat("a_"),
    "a-b_c: no key at the end": repeat("a-b_c") + "=1",
    "base64 without a prefix": base64_run(),
    "one long word": "a" * MB,
    "sk-sk-sk-": repeat("sk-"),
    "sk- near misses": repeat("sk-" + "a" * 18 + " "),
    "ask-ask-": repeat("ask-"),
    "Bearer Bearer": repeat("Bearer "),
    "bearer and tabs": repeat("bearer\t"),
    "Bearer and a long digitless token": "Bearer " + "abcdefghij" * (MB // 10),
    "Bearer then whitespace": "Bearer" + " " * MB,
    "whitespace": " " * MB,
    "mixed whitespace": repeat(" \t\n\r"),
    "AKIA": repeat("AKIA"),
    "AAAA": repeat("A"),
    "ghp_": repeat("ghp_"),
    "ghp_ and a long token": "ghp_" + "a" * MB,
    "github_pat_": repeat("github_pat_"),
    "xoxb-": repeat("xoxb-"),
    "AIza": repeat("AIza"),
    "sk_live_": repeat("sk_live_"),
    "eyJ.": repeat("eyJa."),
    "eyJ segments": repeat("eyJ" + "a" * 20 + "."),
    "-----BEGIN": repeat("-----BEGIN "),
    "-----BEGIN PRIVATE KEY without END": "-----BEGIN PRIVATE KEY-----\n" + repeat("-----END "),
    "Authorization: Basic": repeat("Authorization: Basic "),
    "authorization then newlines": "authorization" + "\n" * MB,
    "x://a:": repeat("x://a:"),
    "://": repeat("://"),
    "scheme without credentials": "https://" + "a" * MB,
    "password=": repeat("password="),
    'password="': repeat('password="'),
    "password then spaces": "password" + " " * MB,
    'password=" without a closing quote': 'password="' + "a" * MB,
    "DB_PASSWORD_": repeat("DB_PASSWORD_"),
    "token token": repeat("token "),
    "api_key_api_key": repeat("api_key_"),
    "markers": repeat("[REDACTED:openai_key] "),
    "markers after keys": repeat("password=[REDACTED:password] "),
    "unclosed marker": "[REDACTED:" + "a" * MB,
}


def timed(function: object, *args: object) -> tuple[object, float]:
    start = time.perf_counter()
    result = function(*args)  # type: ignore[operator]
    return result, time.perf_counter() - start


@pytest.mark.parametrize("shape", list(SHAPES))
def test_one_megabyte_of_adversarial_text_is_redacted_fast(shape: str) -> None:
    redactor = Redactor()
    text = SHAPES[shape]
    once, seconds = timed(redactor, text)
    assert seconds < GUARD, f"{shape}: {seconds:.2f} s for 1 MB"
    again, seconds = timed(Redactor(), once)  # a new one: this one remembers `once`
    assert seconds < GUARD, f"{shape}, redacted: {seconds:.2f} s"
    assert again == once


@pytest.mark.parametrize("shape", ["a-", "sk-sk-sk-", "Bearer Bearer", "base64 without a prefix", "whitespace"])
def test_a_secret_after_a_megabyte_of_near_misses_is_found_fast(shape: str) -> None:
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
    text = f"{SHAPES[shape]}\n{secret}\nBearer abc0123456789defgh AKIA{'Z' * 16}"
    out, seconds = timed(Redactor(), text)
    assert seconds < GUARD
    assert isinstance(out, str) and out.endswith(
        "\n[REDACTED:openai_key]\nBearer [REDACTED:bearer_token] [REDACTED:aws_access_key]"
    )


@pytest.mark.parametrize("rule", RULES, ids=[f"{i}-{rule.name}" for i, rule in enumerate(RULES)])
def test_every_builtin_rule_is_linear_on_its_own_prefix_repeated(rule: object) -> None:
    """Each rule against 1 MB of its own literal beginning, repeated, with and without
    separators (the near misses that make a backtracking rule quadratic)."""
    prefix = rule.pattern.pattern.split("(")[0].split("[")[0].replace("\\", "")  # type: ignore[attr-defined]
    assert prefix, "a built-in rule begins with a literal"
    for unit in (prefix, prefix + " ", prefix + "a", prefix + "=", prefix + ":a"):
        _, seconds = timed(lambda text: list(rule.spans(text)), repeat(unit))  # type: ignore[attr-defined]
        assert seconds < GUARD, f"{unit!r} * N: {seconds:.2f} s"


def test_a_big_secret_free_tool_result_is_shared_not_copied() -> None:
    entry = ToolDone(1, "call_1", ToolResult(SHAPES["base64 without a prefix"] * 5))
    out, seconds = timed(redact_structure, entry, Redactor())
    assert out is entry
    assert seconds < 5 * GUARD


@pytest.mark.parametrize("key", ["a-", "a_", "DB_PASSWORD_", "sk-", "password="])
def test_a_megabyte_long_mapping_key_is_redacted_fast(key: str) -> None:
    value = {"vars": {repeat(key): "x", "y" * MB: repeat(key)}}
    out, seconds = timed(redact_structure, value, Redactor())
    assert seconds < GUARD
    assert len(out["vars"]) == 2  # type: ignore[index]


def test_a_long_text_redacted_again_is_remembered_by_identity() -> None:
    """The kernel redacts a tool's output in the entry, then in the event built from it."""
    redactor = Redactor()
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
    text = SHAPES["a-"][:REMEMBERED] + f" {secret}"
    once = redactor(text)
    assert once.endswith(" [REDACTED:openai_key]")
    assert redactor(text) is once and redactor(once) is once  # remembered: the same object
    equal = text[:-1] + text[-1]  # an equal text, another object: redacted anew, alike
    assert equal is not text and redactor(equal) == once and redactor(equal) is not once
    short = f"key {secret}"
    assert redactor(short) == redactor(short) and redactor(short) is not redactor(short)  # short: not kept
    for i in range(2):  # the last two long texts only
        redactor(text + str(i))
    assert redactor(text) is not once and redactor(text) == once
