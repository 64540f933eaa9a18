"""The testing kit for plugin authors: fakes, recorders, strategies and checks.

Enable the pytest plugin with ``pytest_plugins = ["agent_kernel.testing.pytest_plugin"]``.

- Fakes: `ScriptedModel` (with `text`, `tool_call`, `fault`), `FakeTools` with
  `SequentialStrategy` / `ConcurrentStrategy`, `CodecJournal` (stores entries
  encoded through the agent's codec).
- `RunRecorder` and `check_phase_grammar`; `run_scripted` runs a fresh agent on a
  script and returns a `ScriptedRun` (outcome, model, recorder); `UseJournal` makes
  any journal object the agent's.
- `install_distribution`: a fake installed distribution for entry-point tests.
- Conformance: `check_llm_executor`, `check_tool_strategy`, `check_journal`.
- Properties: `check_plugin_phase_grammar`; hypothesis strategies in
  `agent_kernel.testing.strategies` (needs hypothesis, imported on demand).
"""

from ._dist import install_distribution as install_distribution
from ._journal import CodecJournal as CodecJournal
from ._recorder import RunRecorder as RunRecorder
from ._recorder import ScriptedRun as ScriptedRun
from ._recorder import run_scripted as run_scripted
from ._scripted import ScriptedModel as ScriptedModel
from ._scripted import fault as fault
from ._scripted import text as text
from ._scripted import tool_call as tool_call
from ._tools import ConcurrentStrategy as ConcurrentStrategy
from ._tools import FakeTools as FakeTools
from ._tools import SequentialStrategy as SequentialStrategy
from ._tools import ToolInvocation as ToolInvocation
from .conformance import check_journal as check_journal
from .conformance import check_llm_executor as check_llm_executor
from .conformance import check_tool_strategy as check_tool_strategy
from .crash import UseJournal as UseJournal
from .grammar import check_phase_grammar as check_phase_grammar
from .grammar import check_plugin_phase_grammar as check_plugin_phase_grammar

__all__ = [
    "CodecJournal",
    "ConcurrentStrategy",
    "FakeTools",
    "RunRecorder",
    "ScriptedModel",
    "ScriptedRun",
    "SequentialStrategy",
    "ToolInvocation",
    "UseJournal",
    "check_journal",
    "check_llm_executor",
    "check_phase_grammar",
    "check_plugin_phase_grammar",
    "check_tool_strategy",
    "fault",
    "install_distribution",
    "run_scripted",
    "text",
    "tool_call",
]
