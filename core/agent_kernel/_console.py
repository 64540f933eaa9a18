"""Terminal output of the CLI: rich when it is installed, plain text otherwise.

`Console` and `EventPrinter` are public as `agent_kernel.console` (plugins' commands
print with them); the rest is the CLI's own.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from . import events as ev


class Console:
    """Writes lines and streamed text to one file, styled with rich when it is importable.

    Args:
        file: where to write.
        use_rich: False forces plain text; None uses rich if it imports (and honours
            ``NO_COLOR``, like rich itself).

    .. versionadded:: 0.1
    """

    def __init__(self, file: TextIO, *, use_rich: bool | None = None) -> None:
        self.file = file
        self._rich: Any = None
        if use_rich is not False:
            try:
                from rich.console import Console as RichConsole
            except ImportError:
                pass
            else:
                self._rich = RichConsole(file=file, highlight=False, soft_wrap=True, emoji=False)

    @property
    def rich(self) -> bool:
        """Whether output goes through rich."""
        return self._rich is not None

    def write(self, text: str, style: str = "") -> None:
        """Write `text` as is (streamed text: no newline added)."""
        if self._rich is not None:
            self._rich.out(text, end="", style=style or None, highlight=False)
        else:
            self.file.write(text)
        self.file.flush()

    def line(self, text: str = "", style: str = "") -> None:
        """Write one line of `text`, in `style` (rich style names: ``"bold"``, ``"dim yellow"``...)."""
        self.write(text + "\n", style)


def call_text(name: str, arguments: Any) -> str:
    """``get_weather(city='Lisbon')``: a tool call as one readable line."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in dict(arguments).items())})"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EventPrinter:
    """Shows a run's events as they come: the answer on `out`, what happens on `err`.

    Streamed text goes to `out`, one status line per tool call, result, approval
    request and scheduled retry goes to `err` (ending any streamed line first).
    With ``phases=True`` it also shows the run's phases (RunStart, steps, RunEnd) and
    which tools the model asks for.

    Args:
        out: where the answer streams.
        err: where status lines go (may be the same console as `out`).
        phases: also show the run's phases.
        indent: put before every line it starts.

    .. versionadded:: 0.1
    """

    def __init__(self, out: Console, err: Console, *, phases: bool = False, indent: str = "  ") -> None:
        self.out = out
        self.err = err
        self.phases = phases
        self.indent = indent
        self.mid_line = False

    def status(self, text: str, style: str = "") -> None:
        """A status line on `err`, after ending any streamed text."""
        self.end_text()
        self.err.line(self.indent + text, style)

    def end_text(self) -> None:
        """End the answer's current line, if text is being streamed."""
        if self.mid_line:
            self.out.write("\n")
            self.mid_line = False

    def show(self, event: ev.Event) -> None:
        """Print `event`, if it is one worth showing."""
        if isinstance(event, ev.TextDelta):
            if not self.mid_line:
                self.out.write(self.indent + "assistant: " if self.phases else "", "bold")
                self.mid_line = True
            self.out.write(event.text)
        elif isinstance(event, ev.ToolCallStarted):
            self.status(f"→ {call_text(event.call.name, event.call.arguments)}", "cyan")
        elif isinstance(event, ev.ToolCallFinished):
            mark, style = ("✗", "red") if event.result.is_error else ("←", "green")
            self.status(f"{mark} {event.name}: {_short(event.result.content)}", style)
        elif isinstance(event, ev.ApprovalRequested):
            request = event.request
            self.status(f"⏸ approval needed [{request.id}] {request.tool}: {request.reason}", "yellow")
        elif isinstance(event, ev.RetryScheduled):
            self.status(f"↻ retrying {event.what} in {event.delay:.1f} s: {_short(event.error)}", "yellow")
        elif not self.phases:
            return
        elif isinstance(event, ev.RunStarted):
            resumed = ", resumed" if event.resumed else ""
            self.status(f"── RunStart (attempt {event.attempt}{resumed})", "dim")
        elif isinstance(event, ev.StepStarted):
            self.status(f"── step {event.step}", "dim")
        elif isinstance(event, ev.InferenceFinished) and event.message.tool_calls:
            names = ", ".join(c.name for c in event.message.tool_calls)
            self.status(f"model asks for {len(event.message.tool_calls)} tool call(s): {names}")
        elif isinstance(event, ev.RunEnded):
            self.status(f"── RunEnd: {event.reason}", "dim")


class Spinner:
    """A one-line sign of life on a terminal (``⠋ waiting for openai:gpt-4o-mini…``), erased by `clear`.

    The CLI shows it while a request waits for its first token or event, on stderr,
    only when stderr is a terminal.
    """

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, file: TextIO, *, interval: float = 0.1) -> None:
        self.file = file
        self.interval = interval
        self.text: str | None = None
        self.frame = 0

    def show(self, text: str) -> None:
        """Show `text` after a turning wheel, until `clear`."""
        self.text = text
        self.frame = 0
        self._draw()

    def _draw(self) -> None:
        self.file.write(f"\r{self.FRAMES[self.frame % len(self.FRAMES)]} {self.text}")
        self.file.flush()

    def clear(self) -> None:
        """Erase the line, if one is shown (carriage return, then erase to the end of the line)."""
        if self.text is not None:
            self.text = None
            self.file.write("\r\x1b[K")
            self.file.flush()

    async def animate(self) -> None:
        """Turn the wheel until cancelled."""
        import anyio

        while True:
            await anyio.sleep(self.interval)
            if self.text is not None:
                self.frame += 1
                self._draw()


def json_line(kind: str, data: Any) -> str:
    """One JSON line ``{"type": kind, ...data}`` (non-ASCII kept, no spaces)."""
    return json.dumps({"type": kind, **data}, ensure_ascii=False, separators=(",", ":"), default=str)
