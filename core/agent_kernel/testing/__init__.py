"""The testing kit for plugin authors: fakes, recorders, strategies and checks.

Enable the pytest plugin with ``pytest_plugins = ["agent_kernel.testing.pytest_plugin"]``.
"""

from ._recorder import RunRecorder as RunRecorder
from ._scripted import ScriptedModel as ScriptedModel
from ._scripted import fault as fault
from ._scripted import text as text
from ._scripted import tool_call as tool_call

__all__ = ["RunRecorder", "ScriptedModel", "fault", "text", "tool_call"]
