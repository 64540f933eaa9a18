"""The `Redactor`: built-in rules, user patterns, idempotence, structural redaction."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_kernel import Message, Response, StateKey, ToolCall, ToolResult
from agent_kernel import events as ev
from agent_kernel.journal import Committed, Ended, ErrorInfo, Inferred, Intended, Started, ToolDone
from agent_kernel.patches import AppendMessages, Block, InjectContext, SetData, Stop
from agent_plugin_guardrails import RULES, Redactor, Rule, redact_structure

OPENAI = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
AWS = "AKIA" + "ABCDEFGHIJ234567"
GITHUB = "ghp_" + "a" * 18 + "B" * 18


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {OPENAI} here", "key [REDACTED:openai_key] here"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "[REDACTED:openai_key]"),
        (f"id={AWS}.", "id=[REDACTED:aws_access_key]."),
        ("ASIA" + "Z" * 16, "[REDACTED:aws_access_key]"),
        (f"token {GITHUB}", "token [REDACTED:github_token]"),
        ("github_pat_" + "x1" * 15, "[REDACTED:github_token]"),
        ("xoxb-1234567890-abcdef", "[REDACTED:slack_token]"),
        ("AIza" + "S" * 35, "[REDACTED:google_api_key]"),
        ("sk_live_" + "4" * 24, "[REDACTED:stripe_key]"),
        ("eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4fw", "[REDACTED:jwt]"),
        ("Authorization: Bearer abcdefghij0123456789", "Authorization: Bearer [REDACTED:bearer_token]"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic [REDACTED:basic_auth]"),
        ("postgres://bob:s3cr3t@db:5432/x", "postgres://bob:[REDACTED:url_credentials]@db:5432/x"),
        ("password=hunter2 and more", "password=[REDACTED:password] and more"),
        ("export DB_PASSWORD=hunter2; next", "export DB_PASSWORD=[REDACTED:password]; next"),
        ('{"api_key": "a b c"}', '{"api_key": "[REDACTED:password]"}'),
        ("client_secret: 'xyz'", "client_secret: '[REDACTED:password]'"),
        ("?access_token=abc&x=1", "?access_token=[REDACTED:password]&x=1"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = [REDACTED:password]"),
        (
            "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nb",
            "a\n[REDACTED:private_key]\nb",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\ntruncated", "[REDACTED:private_key]"),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n-----END PGP PRIVATE KEY BLOCK-----", "[REDACTED:private_key]"),
    ],
)
def test_builtin_rules_redact_secrets(text: str, expected: str) -> None:
    redactor = Redactor()
    assert redactor(text) == expected
    assert redactor(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "sk-short",
        "ask-questionsabcdefghijklmnopq",  # sk- inside a word
        "AKIA" + "A" * 15,  # one character short
        "AKIA" + "A" * 17,  # one too many: not a key id
        "ghp_" + "a" * 10,
        "Bearer authentication is common; bearer tokenswithoutdigits",
        "the password is required",
        "passwords=3 and password_hint=blue",  # not the key itself
        "Basic arithmetic",
        "https://example.com/a:b@c",  # no user:password before the host
        "-----BEGIN PUBLIC KEY-----",
        "",
    ],
)
def test_near_misses_are_left_alone(text: str) -> None:
    assert Redactor()(text) is text


def test_user_patterns_bare_named_and_with_a_secret_group() -> None:
    redactor = Redactor(
        [
            r"ACME-\d{6}",
            ("ticket", re.compile(r"TICKET-\d+")),
            Rule("pin", r"pin (?P<secret>\d{4})"),
        ]
    )
    assert redactor("ACME-123456 TICKET-9 pin 1234") == "[REDACTED:custom] [REDACTED:ticket] pin [REDACTED:pin]"
    assert redactor.rules[: len(RULES)] == RULES


def test_builtin_rules_can_be_left_out_and_the_replacement_changed() -> None:
    redactor = Redactor([("acme", r"ACME-\d+")], builtin=False, replacement="<{name}>")
    assert redactor(f"ACME-1 {OPENAI}") == f"<acme> {OPENAI}"
    assert [rule.name for rule in redactor.rules] == ["acme"]


def test_bad_replacements_and_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="must contain"):
        Redactor(replacement="***")
    with pytest.raises(ValueError, match="across redaction markers"):
        Redactor([("bad", r"\] \[")])
    with pytest.raises(TypeError, match="regex"):
        Redactor([42])  # type: ignore[list-item]


def test_overlapping_findings_merge_into_one_named_after_the_first_rule() -> None:
    redactor = Redactor()
    text = f"token: {OPENAI}"  # the password rule and the openai rule find the same value
    assert [(f.rule, text[f.start : f.end]) for f in redactor.findings(text)] == [("openai_key", OPENAI)]
    assert redactor(text) == "token: [REDACTED:openai_key]"
    assert redactor(redactor(text)) == redactor(text)


def test_markers_left_by_an_earlier_redaction_are_not_secrets() -> None:
    redactor = Redactor()
    for text in ("password=[REDACTED:openai_key]", "https://u:[REDACTED:password]@h", "x [REDACTED:custom] y"):
        assert redactor(text) is text
    assert not redactor.contains_secret("password=[REDACTED:password]")


def test_kinds_and_contains_secret() -> None:
    redactor = Redactor()
    assert redactor.kinds(f"{AWS} and {OPENAI} and {AWS}") == ["aws_access_key", "openai_key"]
    assert redactor.contains_secret(f"x {GITHUB}") and not redactor.contains_secret("nothing here")


# ----------------------------------------------------------------------------- structures


def test_redact_structure_redacts_journal_entries_but_not_identifiers_or_plugin_data() -> None:
    redactor = Redactor()
    key = StateKey("plugin.secret", str, "")
    entry = Committed(
        "after_inference",
        1,
        (
            AppendMessages((Message("user", f"use {OPENAI}"),)),
            InjectContext(f"key {AWS}"),
            Stop("sk-code-is-an-identifier-0123456789", f"leaked {GITHUB}"),
            Block("password=x1"),
            SetData(key, f"kept {OPENAI}"),
        ),
        ("plugin-a", "plugin-b", "c", "d", "e"),
        "call_1",
    )
    out = redact_structure(entry, redactor)
    assert out.patches[0].messages[0].content == "use [REDACTED:openai_key]"
    assert out.patches[1].text == "key [REDACTED:aws_access_key]"
    assert out.patches[2] == Stop("sk-code-is-an-identifier-0123456789", "leaked [REDACTED:github_token]")
    assert out.patches[3].reason == "password=[REDACTED:password]"
    assert out.patches[4] is entry.patches[4]  # plugin data is the plugin's business
    assert (out.phase, out.sources, out.call_id) == (entry.phase, entry.sources, entry.call_id)


def test_redact_structure_reaches_tool_arguments_results_inputs_and_errors() -> None:
    redactor = Redactor()
    call = ToolCall("call_1", "login", {"user": "bob", "auth": {"password": "pw", "header": f"Bearer {OPENAI}"}})
    inferred = redact_structure(Inferred(1, Response(Message("assistant", "", (call,)))), redactor)
    arguments = inferred.response.message.tool_calls[0].arguments
    assert isinstance(arguments, MappingProxyType)
    assert arguments["auth"] == {"password": "[REDACTED:password]", "header": "Bearer [REDACTED:openai_key]"}
    assert arguments["user"] == "bob"
    assert inferred.response.message.tool_calls[0].name == "login"
    assert redact_structure(Intended(1, "c", {"q": AWS}), redactor).arguments == {"q": "[REDACTED:aws_access_key]"}
    assert redact_structure(ToolDone(1, "c", ToolResult("DB_PASSWORD=x")), redactor).result.content == (
        "DB_PASSWORD=[REDACTED:password]"
    )
    assert (
        redact_structure(Started(1, "scripted", f"my key {OPENAI}"), redactor).input == "my key [REDACTED:openai_key]"
    )
    ended = redact_structure(Ended("error", ErrorInfo(f"bad {OPENAI}", "p", "h", "T")), redactor)
    assert ended == Ended("error", ErrorInfo("bad [REDACTED:openai_key]", "p", "h", "T"))


def test_values_under_secret_looking_keys_are_redacted_whole_with_a_redactor_only() -> None:
    value = {"DB_PASSWORD": "hunter2", "apiKey": "k", "password_hint": "blue", "token": "", "n": {"secret": "s"}}
    assert redact_structure(value, Redactor()) == {
        "DB_PASSWORD": "[REDACTED:password]",
        "apiKey": "[REDACTED:password]",
        "password_hint": "blue",  # not a secret key
        "token": "",  # nothing to hide
        "n": {"secret": "[REDACTED:password]"},
    }
    assert redact_structure(value, lambda text: text) is value  # a plain function sees only the strings
    once = redact_structure(value, Redactor())
    assert redact_structure(once, Redactor()) is once


def test_secrets_used_as_mapping_keys_are_redacted() -> None:
    redactor = Redactor()
    arguments = MappingProxyType({"vars": {OPENAI: "x", "n": 1, 3: AWS}, "list": [{f"Bearer {OPENAI}": ()}]})
    out = redact_structure(arguments, redactor)
    assert isinstance(out, MappingProxyType)
    assert out["vars"] == {"[REDACTED:openai_key]": "x", "n": 1, 3: "[REDACTED:aws_access_key]"}
    assert out["list"] == [{"Bearer [REDACTED:openai_key]": ()}]
    assert redact_structure(out, redactor) is out  # idempotent, and shared when nothing changes
    call = ToolCall("call_1", "configure", {"vars": {AWS: "y"}})
    inferred = redact_structure(Inferred(1, Response(Message("assistant", "", (call,)))), redactor)
    assert dict(inferred.response.message.tool_calls[0].arguments["vars"]) == {"[REDACTED:aws_access_key]": "y"}


def test_keys_that_redact_alike_are_numbered_so_no_entry_is_lost() -> None:
    other = "sk-" + "Q" * 30
    value = {OPENAI: 1, "[REDACTED:openai_key]#2": 2, other: 3, "[REDACTED:openai_key]": 4}
    assert redact_structure(value, Redactor()) == {
        "[REDACTED:openai_key]#3": 1,
        "[REDACTED:openai_key]#2": 2,
        "[REDACTED:openai_key]#4": 3,
        "[REDACTED:openai_key]": 4,
    }


def test_a_secret_looking_key_decides_on_its_value_before_it_is_redacted() -> None:
    value = {"api_key": "k1", f"password {OPENAI}": "plain", "token": OPENAI}
    assert redact_structure(value, Redactor()) == {
        "api_key": "[REDACTED:password]",
        "password [REDACTED:openai_key]": "plain",  # not a secret-looking key: its value stays
        "token": "[REDACTED:password]",
    }


def test_redact_structure_reaches_events() -> None:
    redactor = Redactor()
    assert redact_structure(ev.TextDelta(5, "run", OPENAI), redactor) == ev.TextDelta(5, "run", "[REDACTED:openai_key]")
    finished = ev.ToolCallFinished(1, "run-sk-abcdefghijklmnopqrstuvwxyz", 1, "c", "t", ToolResult(AWS))
    out = redact_structure(finished, redactor)
    assert out.result.content == "[REDACTED:aws_access_key]" and out.run_id == finished.run_id


def test_redact_structure_shares_what_it_does_not_change() -> None:
    entry = Committed("step_end", 2, (InjectContext("nothing secret"),), ("p",))
    assert redact_structure(entry, Redactor()) is entry
    value: Any = {"a": ["x", ("y",)]}
    assert redact_structure(value, Redactor()) is value


# ----------------------------------------------------------------------------- properties

FILLER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz .,!?\n", max_size=30)
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
B64URL = ALNUM + "_-"


def s(alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=lo, max_size=hi)


def pieces(prefix: st.SearchStrategy[str] | str, secret: st.SearchStrategy[str], suffix: str = "") -> Any:
    """(text before the secret that stays, the secret, text after it that stays)."""
    before = st.just(prefix) if isinstance(prefix, str) else prefix
    return st.tuples(before, secret, st.just(suffix))


def token_with_digit() -> st.SearchStrategy[str]:
    return st.builds(lambda a, d, b: a + d + b, s(ALNUM + "._~+/-", 8, 20), s("0123456789", 1, 1), s(ALNUM, 7, 20))


SECRETS = st.one_of(
    pieces("", st.builds(lambda a, b: "sk-" + a + b, s(ALNUM, 1, 1), s(ALNUM + "_-", 19, 40))),
    pieces("", st.builds(lambda p, b: p + b, st.sampled_from(["AKIA", "ASIA", "AROA"]), s(UPPER_DIGITS, 16, 16))),
    pieces("", st.builds(lambda p, b: p + b, st.sampled_from(["ghp_", "gho_", "ghs_"]), s(ALNUM, 36, 40))),
    pieces("", st.builds(lambda b: "github_pat_" + b, s(ALNUM + "_", 22, 40))),
    pieces("", st.builds(lambda b: "xoxb-" + b, s(ALNUM + "-", 10, 30))),
    pieces("", st.builds(lambda b: "AIza" + b, s(B64URL, 35, 35))),
    pieces("", st.builds(lambda b: "sk_live_" + b, s(ALNUM, 16, 30))),
    pieces("", st.builds(lambda a, b, c: f"eyJ{a}.eyJ{b}.{c}", s(B64URL, 8, 20), s(B64URL, 8, 20), s(B64URL, 8, 20))),
    pieces(st.sampled_from(["Bearer ", "bearer ", "Authorization: Bearer "]), token_with_digit()),
    pieces("Authorization: Basic ", s(ALNUM + "+/", 8, 30)),
    pieces(st.builds(lambda u: f"https://{u}:", s(ALNUM, 1, 8)), s(ALNUM + "!$%*", 1, 12), "@example.com/x"),
    pieces(
        st.builds(
            lambda k, sep: k + sep,
            st.sampled_from(
                ["password", "DB_PASSWORD", "api_key", "client-secret", "access_token", "passphrase", "pwd"]
            ),
            st.sampled_from(["=", ": ", " = ", ":"]),
        ),
        s(ALNUM + "!@#$%^*()+.~/", 1, 20),
    ),
    pieces('"password": "', s(ALNUM + " !@#$%^*()+.~/,;&'", 1, 20), '"'),
    pieces(
        "",
        st.builds(
            lambda kind, body: f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----",
            st.sampled_from(["", "RSA ", "EC ", "OPENSSH "]),
            st.lists(s(ALNUM + "+/=", 1, 64), min_size=1, max_size=4).map("\n".join),
        ),
    ),
    pieces("", st.builds(lambda d: "ACME-" + d, s("0123456789", 6, 6))),
)
REDACTOR = Redactor([("acme", r"ACME-\d{6}")])
MARKER = re.compile(r"\[REDACTED:[a-z_]+\]")


UNTIMED = settings(deadline=None)  # properties, not timings: the machine may be loaded


@UNTIMED
@given(st.lists(st.tuples(FILLER, SECRETS), max_size=5), FILLER)
def test_no_embedded_secret_survives_and_the_rest_is_unchanged(parts: list[Any], tail: str) -> None:
    text, expected = [], []
    for filler, (before, secret, after) in parts:
        text += [filler, " ", before, secret, after, " "]
        expected += [filler, " ", before, "[REDACTED]", after, " "]
    text.append(tail)
    expected.append(tail)
    redacted = REDACTOR("".join(text))
    assert MARKER.sub("[REDACTED]", redacted) == "".join(expected)
    kept = "".join(expected)  # what stays: a secret may occur in it by chance ("aaaaaaaa")
    for _, (_, secret, _) in parts:
        if len(secret) >= 8 and secret not in kept:
            assert secret not in redacted


@UNTIMED
@given(FILLER)
def test_text_without_secrets_is_returned_unchanged(text: str) -> None:
    assert REDACTOR(text) is text


@UNTIMED
@given(st.one_of(st.text(), st.lists(st.one_of(FILLER, SECRETS.map("".join))).map(" ".join)))
def test_redaction_is_idempotent(text: str) -> None:
    once = REDACTOR(text)
    assert REDACTOR(once) == once


#: Near misses of every rule: the prefixes, keys and separators that make a backtracking
#: rule slow, repeated; a secret is planted between them, after a separator.
NEAR_MISSES = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(
        [
            "a-",
            "a_",
            "sk-",
            "ask-",
            "Bearer ",
            "bearer\t",
            "AKIA",
            "ghp_",
            "github_pat_",
            "xoxb-",
            "AIza",
            "sk_live_",
            "eyJa.",
            "-----BEGIN ",
            "-----END PRIVATE KEY-----",
            "Authorization: Basic ",
            "x://a:",
            "password",
            "password=",
            'password="',
            "DB_PASSWORD_",
            "api_key_",
            "token ",
            " \t",
            "\n",
            "A1b2C3d4+/",
            "[REDACTED:x]",
        ]
    ),
    st.integers(1, 60),
)
SEPARATORS = st.sampled_from([" ", "\n", " \t ", ", ", "; "])


@UNTIMED
@given(st.lists(st.tuples(NEAR_MISSES, SEPARATORS, SECRETS.map("".join), SEPARATORS), min_size=1, max_size=4))
def test_a_secret_planted_among_near_misses_never_survives_and_redaction_is_idempotent(parts: list[Any]) -> None:
    text = "".join(f"{near}{sep}{secret}{sep2}" for near, sep, secret, sep2 in parts) + "end"
    once = REDACTOR(text)
    for _, _, secret, _ in parts:
        hidden = secret.split("\n")[1] if secret.startswith("-----BEGIN") else secret  # a key block's body
        for piece in (hidden, *SECRET_VALUE.findall(secret)):
            if len(piece) >= 8:
                assert piece not in once
    assert REDACTOR(once) == once


#: The value of a planted ``key=value``, ``https://user:value@`` or ``Bearer value``.
SECRET_VALUE = re.compile(r"(?:[=:] ?\"?|Bearer |bearer |Basic )([^\s\"@]{8,})")


@UNTIMED
@given(
    st.recursive(
        st.one_of(FILLER, SECRETS.map("".join)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.one_of(FILLER, SECRETS.map("".join)), inner, max_size=3),
        ),
        max_leaves=8,
    )
)
def test_no_secret_survives_in_keys_or_values_of_a_structure(value: Any) -> None:
    secrets = [s for s in _strings(value) if REDACTOR.contains_secret(s)]
    once = redact_structure(value, REDACTOR)
    flat = repr(once)
    for text in secrets:
        for finding in REDACTOR.findings(text):
            piece = text[finding.start : finding.end]
            if len(piece) >= 8:
                assert piece not in flat
    assert redact_structure(once, REDACTOR) is once
    assert len(_strings(once)) == len(_strings(value))  # no key lost


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
