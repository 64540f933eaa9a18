"""`TypedOutput`: the run's final answer as a validated, typed value."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, Optional, TypeVar, final, overload

from cattrs import Converter, transform_error
from cattrs.v import format_exception

from agent_kernel import (
    Context,
    Message,
    Outcome,
    Request,
    Response,
    RunState,
    RuntimeRegistrar,
    StateKey,
    ToolCall,
    ToolContext,
    ToolRegistrar,
    ToolResult,
    ToolSpec,
    hookimpl,
)
from agent_kernel.errors import ToolInputError
from agent_kernel.patches import (
    AppendMessages,
    Block,
    ExcludeTools,
    Finish,
    IncrementData,
    InjectContext,
    Patch,
    ProvideResult,
    SetData,
    Stop,
)

from ._schema import UnsupportedSchema, check, make_converter, schema_for

__all__ = ["ACCEPTED", "ALREADY", "OutputInvalid", "TypedOutput", "output_of"]

T = TypeVar("T")
Mode = Literal["tool", "native", "auto"]

#: The result the model sees for the ``final_result`` call that was accepted.
ACCEPTED = "Final result accepted."
#: The result of a ``final_result`` call made after one was accepted.
ALREADY = "A final result was already accepted; this call was ignored."

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(.*?)\n?```$", re.DOTALL)
_MAX_ERRORS = 10


class OutputInvalid(ValueError):
    """A candidate output did not validate; `errors` lists the problems, one per item.

    .. versionadded:: 0.1
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


def _cattrs_messages(exc: Exception) -> list[str]:
    def explain(error: BaseException, tp: Any) -> str:
        if tp is None or isinstance(error, ValueError):  # raised by __init__ or an attrs validator
            return str(error) or type(error).__name__
        return format_exception(error, tp)

    out = []
    for line in transform_error(exc, format_exception=explain):
        message, _, path = line.rpartition(" @ ")
        where = path.removeprefix("$").removeprefix(".")
        out.append(f"{where}: {message}" if where else message)  # "" for errors raised by __init__ / validators
    return out


@final
class TypedOutput(Generic[T]):
    """The run's final answer as a typed value, validated, with bounded retries.

    `schema` is an attrs class (validated against its JSON schema, then structured
    with cattrs, so attrs validators run too) or a JSON schema dict (validated with
    a built-in checker; the value is the decoded JSON). How the model gives it:

    * ``mode="tool"`` (the default): a tool `tool_name` (``final_result``) whose
      parameters are the schema. The model calls it with the answer as arguments.
      A plain-text final answer is not accepted.
    * ``mode="native"``: the final text answer (a response without tool calls) is
      parsed as JSON (one surrounding code fence is tolerated) and validated. The
      provider's structured-output mode is switched on by the caller, because a
      plugin cannot change request settings: pass
      ``Agent(settings={"response_format": output.response_format()})``. Unless
      ``instructions=False``, the schema is also put in the context of every request.
    * ``mode="auto"``: both. The tool is offered, and a final text answer that is
      valid JSON for the schema is accepted too. When the request's settings already
      carry a ``response_format`` (native structured output is on), the tool is
      hidden from the model.

    Attempts and retries: a model response is an attempt when it calls
    ``final_result`` or answers with text (no tool calls); responses that only call
    other tools are ordinary steps. An attempt fails when none of its
    ``final_result`` calls is valid, or when its text is not a valid output (in
    tool mode any text fails). The model is told every problem (as the calls' error
    results, or as a user message after its text) and tries again, at most
    `max_retries` times; the failed attempt after that ends the run ``stopped`` with
    code ``"<name>.invalid"`` (``output.invalid``) at the end of its step. So the
    model makes at most ``max_retries + 1`` attempts.

    The value is stored under the `StateKey` `VALUE` (``"<name>.value"``, declared
    and, for attrs classes, given converter hooks, so it round-trips through
    persistent journals); read it with `value` (or `output_of`). It is set once:
    later ``final_result`` calls are answered with `ALREADY`.

    How a tool-mode run ends: at the end of the step in which a ``final_result``
    call was accepted (the response's other tool calls still run), the plugin
    appends an assistant message holding the value as JSON and returns
    ``patches.Finish``: the run ends ``completed``, ``outcome.output`` is that JSON
    and ``outcome.stop`` is ``StopInfo("finished", ..., completed=True)``. No
    further request is sent. (In native mode the model's JSON answer ends the run
    by itself.)

    Args:
        schema: an attrs class or a JSON schema (a dict). A schema whose root is not
            an object is wrapped as ``{"result": <schema>}`` for the tool and for
            native structured output (which need an object); the value is unwrapped.
        max_retries: how many failed attempts the model may correct (>= 0).
        mode: "tool", "native" or "auto" (see above).
        name: the plugin's name; prefixes its state keys and stop codes. Give each
            `TypedOutput` of one agent its own.
        tool_name: the name of the output tool.
        description: the output tool's description (default: says what it is for,
            plus the attrs class's docstring summary or the schema's description).
        instructions: put the schema in the context of every request, until a value
            is accepted: True, False, or the text to put; None means True for
            ``mode="native"`` and False otherwise.

    Raises:
        UnsupportedSchema: the schema or a field type cannot be described.
        ValueError: a bad option.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        schema: type[T] | Mapping[str, Any],
        *,
        max_retries: int = 2,
        mode: Mode = "tool",
        name: str = "output",
        tool_name: str = "final_result",
        description: str | None = None,
        instructions: bool | str | None = None,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if mode not in ("tool", "native", "auto"):
            raise ValueError(f"mode must be 'tool', 'native' or 'auto', got {mode!r}")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name must be letters, digits, '_', '.' or '-', got {name!r}")
        if not isinstance(tool_name, str) or not _TOOL_NAME.match(tool_name):
            raise ValueError(f"tool_name must be 1 to 64 letters, digits, '_' or '-', got {tool_name!r}")
        self.name = name
        self.mode: Mode = mode
        self.max_retries = max_retries
        self.tool_name = tool_name
        self._converter: Converter | None = None
        if isinstance(schema, type):
            self.type: type[T] | None = schema
            self.json_schema: dict[str, Any] = schema_for(schema)
            self._converter = make_converter()
        elif isinstance(schema, Mapping):
            self.type = None
            self.json_schema = copy.deepcopy(dict(schema))
            check(None, self.json_schema)  # a malformed schema ($ref that does not resolve...) fails now
        else:
            raise UnsupportedSchema(f"expected an attrs class or a JSON schema dict, got {schema!r}")
        self._wrapped = not _is_object_schema(self.json_schema)
        self.parameters: dict[str, Any] = _wrap(self.json_schema) if self._wrapped else self.json_schema
        summary = str(self.json_schema.get("description") or "")
        self.description = description if description is not None else _default_description(summary)
        if instructions is None:
            instructions = mode == "native"
        if instructions is True:
            instructions = (
                "Give your final answer as one JSON value that matches this JSON schema, "
                "with no other text:\n" + json.dumps(self.parameters, ensure_ascii=False)
            )
        self.instructions: str | None = instructions or None
        self._offers_tool = mode != "native"

        #: The accepted value (None until one is accepted; see `CALL`).
        self.VALUE: StateKey[Any] = StateKey(f"{name}.value", Optional[self.type] if self.type else Any, None)  # noqa: UP045
        #: Failed attempts the model was asked to correct.
        self.RETRIES: StateKey[int] = StateKey(f"{name}.retries", int, 0)
        #: ``"<step>:<call id>"`` of the accepted ``final_result`` call, "" for a text answer,
        #: None while no value is accepted.
        self.CALL: StateKey[str | None] = StateKey(f"{name}.call", Optional[str], None)  # noqa: UP045
        #: Why the run stops with ``<name>.invalid`` at the end of this step.
        self.INVALID: StateKey[str | None] = StateKey(f"{name}.invalid", str, None)
        self.state_keys = (self.VALUE, self.RETRIES, self.CALL, self.INVALID)

    def __repr__(self) -> str:
        schema = self.type.__name__ if self.type is not None else "<json schema>"
        return f"TypedOutput({schema}, mode={self.mode!r}, name={self.name!r})"

    # ------------------------------------------------------------------ public helpers

    @overload
    def value(self, outcome: Outcome) -> T | None: ...
    @overload
    def value(self, outcome: RunState) -> T | None: ...
    def value(self, outcome: Outcome | RunState) -> T | None:
        """The accepted value of a run (an `Outcome` or a `RunState`), or None.

        Set whatever the run's reason: a run that accepted a value and was then
        stopped by another plugin still has it. (A schema that allows ``null`` makes
        None ambiguous: ``state.get(output.CALL) is not None`` says whether a value
        was accepted.)
        """
        state = outcome.state if isinstance(outcome, Outcome) else outcome
        return state.get(self.VALUE)  # type: ignore[no-any-return]

    def response_format(self, *, strict: bool = False) -> dict[str, Any]:
        """The OpenAI-style ``response_format`` for native structured output.

        Pass it in the agent's settings (a plugin cannot change request settings)::

            Agent(..., settings={"response_format": output.response_format()})
        """
        return {
            "type": "json_schema",
            "json_schema": {"name": self.tool_name, "schema": self.parameters, "strict": strict},
        }

    def validate(self, data: Any) -> T:
        """Validate decoded JSON against the model-facing schema; return the value.

        Raises:
            OutputInvalid: listing every problem (at most ten), each with its path.
        """
        errors = check(data, self.parameters)
        if errors:
            raise OutputInvalid(_cap(errors))
        if self._wrapped:
            data = data["result"]
        if self.type is None or self._converter is None:
            return data  # type: ignore[no-any-return]
        try:
            return self._converter.structure(data, self.type)
        except Exception as exc:
            raise OutputInvalid(_cap(_cattrs_messages(exc))) from exc

    def parse(self, text: str) -> T:
        """Parse a text answer (JSON, optionally in one code fence) and `validate` it.

        For a wrapped (non-object) schema the value may be given bare or as
        ``{"result": ...}``.

        Raises:
            OutputInvalid: the text is not JSON, or the value is invalid.
        """
        stripped = text.strip()
        fenced = _FENCE.match(stripped)
        if fenced:
            stripped = fenced.group(1).strip()
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            reason = getattr(exc, "msg", str(exc))
            where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise OutputInvalid([f"the answer is not valid JSON ({reason}{where})"]) from None
        if self._wrapped and not (isinstance(data, Mapping) and "result" in data):
            data = {"result": data}  # a wrapped schema's value may also be given bare
        return self.validate(data)

    def dump(self, value: T) -> Any:
        """`value` as JSON data (in tool mode, the appended answer is its ``json.dumps``)."""
        if self._converter is not None:
            return self._converter.unstructure(value)
        return value

    # ------------------------------------------------------------------ registration

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        for key in self.state_keys:
            runtime.add_state_key(key)

    @hookimpl
    def agent_register_tools(self, tools: ToolRegistrar) -> None:
        if self._offers_tool:
            tools.add(ToolSpec(self.tool_name, self.description, self.parameters), self._run_tool)

    @hookimpl
    def agent_configure_converter(self, converter: Converter) -> None:
        own, cls = self._converter, self.type
        if own is None or cls is None:
            return
        converter.register_structure_hook(cls, lambda raw, _: own.structure(raw, cls))
        converter.register_unstructure_hook(cls, own.unstructure)

    async def _run_tool(self, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        """Only runs if no before-hook answered the call (this plugin always answers it)."""
        try:
            self.validate(dict(arguments))
        except OutputInvalid as exc:
            raise ToolInputError(self._call_feedback(exc.errors)) from None
        return ToolResult(ACCEPTED)

    # ------------------------------------------------------------------ phases

    @hookimpl
    def agent_before_inference(self, ctx: Context, request: Request) -> list[Patch] | None:
        state = ctx.state
        if state.get(self.CALL) is not None:  # a value was accepted
            return None
        out: list[Patch] = []
        if (
            self.mode == "auto"
            and request.settings.get("response_format") is not None
            and self.tool_name not in state.excluded_tools
        ):
            out.append(ExcludeTools({self.tool_name}))
        if self.instructions:
            out.append(InjectContext(self.instructions))
        return out or None

    @hookimpl
    def agent_after_inference(self, ctx: Context, response: Response) -> list[Patch] | None:
        state = ctx.state
        if state.get(self.CALL) is not None:  # a value was accepted
            return None
        message = response.message
        if message.tool_calls:
            if not self._offers_tool:
                return None
            mine = [c for c in message.tool_calls if c.name == self.tool_name]
            if not mine:
                return None  # an ordinary tool-use step, not an attempt at the output
            errors: list[str] = []
            for call in mine:
                try:
                    value = self.validate(dict(call.arguments))
                except OutputInvalid as exc:
                    errors = exc.errors
                    continue
                return [SetData(self.VALUE, value), SetData(self.CALL, f"{ctx.step}:{call.id}")]
            return self._failed(state, errors, None)  # the calls' error results carry the feedback
        if self.mode == "tool":
            return self._failed(state, [f"no {self.tool_name} call"], self._text_feedback())
        try:
            value = self.parse(message.content)
        except OutputInvalid as exc:
            return self._failed(state, exc.errors, self._parse_feedback(exc.errors, state))
        return [SetData(self.VALUE, value), SetData(self.CALL, "")]

    @hookimpl
    def agent_before_tool_execute(self, ctx: Context, call: ToolCall) -> list[Patch] | None:
        if call.name != self.tool_name or not self._offers_tool:
            return None
        state = ctx.state
        accepted = state.get(self.CALL)
        if accepted == f"{ctx.step}:{call.id}":
            return [ProvideResult(ACCEPTED)]
        if accepted is not None:
            return [ProvideResult(ALREADY)]
        try:
            self.validate(dict(call.arguments))
        except OutputInvalid as exc:
            return [Block(self._call_feedback(exc.errors))]
        # Valid but not accepted: only possible if this plugin did not see the response
        # (added to the agent on a resume); the model is asked to call again.
        return [Block(f"This call was not recorded as the final result; call {self.tool_name} again.")]

    @hookimpl
    def agent_after_tool_execute(self, ctx: Context, call: ToolCall, result: ToolResult) -> list[Patch] | None:
        """An accepted call that another plugin blocked (a budget, a guardrail) is not accepted."""
        if result.is_error and ctx.state.get(self.CALL) == f"{ctx.step}:{call.id}":
            return [SetData(self.CALL, None), SetData(self.VALUE, None)]
        return None

    @hookimpl
    def agent_step_end(self, ctx: Context) -> list[Patch] | None:
        state = ctx.state
        if state.stop is not None:
            return None
        invalid = state.get(self.INVALID)
        if invalid is not None:
            return [Stop(f"{self.name}.invalid", invalid)]
        if not state.get(self.CALL):  # no value, or a text answer: the run ends by itself
            return None
        answer = json.dumps(self.dump(state.get(self.VALUE)), ensure_ascii=False)
        return [
            AppendMessages((Message("assistant", answer),)),
            Finish(f"{self.tool_name} was called with a valid result"),
        ]

    # ------------------------------------------------------------------ feedback

    def _failed(self, state: RunState, errors: list[str], feedback: str | None) -> list[Patch]:
        used = state.get(self.RETRIES)
        if used >= self.max_retries:
            retries = "retry" if self.max_retries == 1 else "retries"
            detail = f"no valid output after {self.max_retries} {retries}: " + "; ".join(errors)
            return [SetData(self.INVALID, detail)]
        out: list[Patch] = [IncrementData(self.RETRIES)]
        if feedback is not None:
            out.append(AppendMessages((Message("user", feedback),)))
        return out

    def _tool_offered(self, state: RunState) -> bool:
        only = state.only_tools
        return (
            self._offers_tool
            and self.tool_name not in state.excluded_tools
            and (only is None or self.tool_name in only)
        )

    def _call_feedback(self, errors: Sequence[str]) -> str:
        lines = "\n".join(f"- {e}" for e in errors)
        return f"Invalid final result:\n{lines}\nCall {self.tool_name} again with corrected arguments."

    def _text_feedback(self) -> str:
        return (
            f"Give your final answer by calling the {self.tool_name} tool: its arguments are the answer. "
            "A plain text answer is not accepted."
        )

    def _parse_feedback(self, errors: Sequence[str], state: RunState) -> str:
        lines = "\n".join(f"- {e}" for e in errors)
        how = "Reply with only a JSON value that matches the required schema."
        if self._tool_offered(state):
            how = f"Call the {self.tool_name} tool with the answer, or reply with only a JSON value that matches its schema."
        return f"Your answer is not a valid final result:\n{lines}\n{how}"


def output_of(outcome: Outcome | RunState, name: str = "output") -> Any:
    """The value a `TypedOutput` named `name` accepted in a run, or None.

    For when the `TypedOutput` object is not at hand; `TypedOutput.value` is typed.

    .. versionadded:: 0.1
    """
    state = outcome.state if isinstance(outcome, Outcome) else outcome
    return state.data.get(f"{name}.value")


# ----------------------------------------------------------------------------- helpers


def _is_object_schema(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "object" or (kind is None and "properties" in schema)


def _wrap(schema: Mapping[str, Any]) -> dict[str, Any]:
    inner = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
        "additionalProperties": False,
    }
    for key in ("$defs", "definitions"):  # keep local $refs resolvable from the new root
        if key in schema:
            wrapped[key] = schema[key]
    return wrapped


def _default_description(summary: str) -> str:
    text = "Give the final answer. Call this once you have it: its arguments are the answer."
    return f"{text} {summary}" if summary else text


def _cap(errors: list[str]) -> list[str]:
    if len(errors) <= _MAX_ERRORS:
        return errors
    return [*errors[:_MAX_ERRORS], f"... and {len(errors) - _MAX_ERRORS} more problems"]
