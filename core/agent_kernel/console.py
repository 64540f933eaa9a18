"""Terminal output for commands that plugins add: styled lines and a run's events as they come.

`Console` writes lines and streamed text to one file, through rich when it is
installed and as plain text otherwise. `EventPrinter` shows a run's events on two
consoles: the answer on one, the tool calls, approvals and retries on the other.
``agent-kernel run`` prints with them, and a plugin's command (``agent-kernel demo``
of agent-plugin-demo, for one) can print the same way::

    import sys

    from agent_kernel.console import Console, EventPrinter

    out = Console(sys.stdout)
    printer = EventPrinter(out, Console(sys.stderr))
    # in an `agent_on_event` hook: printer.show(event)

.. versionadded:: 0.1
"""

from ._console import Console as Console
from ._console import EventPrinter as EventPrinter

__all__ = ["Console", "EventPrinter"]
