"""agent-kernel: a plugin-first micro-kernel for LLM agent loops.

The kernel advances a run through fixed phases, calls the plugins' hooks at each
phase, folds the patches they return into a frozen state, journals every commit and
streams typed events. Everything else is a plugin. See `agent_kernel.hookspecs`.
"""

from . import events as events
from . import patches as patches
from ._agent import Agent as Agent
from ._agent import EventStream as EventStream
from ._fold import fold as fold
from ._fold import merge_concurrent as merge_concurrent
from ._log import Log as Log
from ._outcome import Outcome as Outcome
from ._outcome import Stats as Stats
from ._registry import CommandRegistrar as CommandRegistrar
from ._registry import Deltas as Deltas
from ._registry import ModelExecutor as ModelExecutor
from ._registry import ModelRegistrar as ModelRegistrar
from ._registry import RuntimeRegistrar as RuntimeRegistrar
from ._registry import ToolContext as ToolContext
from ._registry import ToolRegistrar as ToolRegistrar
from ._registry import ToolStrategy as ToolStrategy
from ._state import ApprovalRequest as ApprovalRequest
from ._state import Approve as Approve
from ._state import Deny as Deny
from ._state import Message as Message
from ._state import Request as Request
from ._state import Response as Response
from ._state import RunState as RunState
from ._state import StateKey as StateKey
from ._state import StopInfo as StopInfo
from ._state import ToolCall as ToolCall
from ._state import ToolResult as ToolResult
from ._state import ToolSpec as ToolSpec
from ._state import Usage as Usage
from .hookspecs import Context as Context
from .hookspecs import Fail as Fail
from .hookspecs import Fallback as Fallback
from .hookspecs import Retry as Retry
from .hookspecs import hookimpl as hookimpl
from .journal import ErrorInfo as ErrorInfo

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "ApprovalRequest",
    "Approve",
    "CommandRegistrar",
    "Context",
    "Deltas",
    "Deny",
    "ErrorInfo",
    "EventStream",
    "Fail",
    "Fallback",
    "Log",
    "Message",
    "ModelExecutor",
    "ModelRegistrar",
    "Outcome",
    "Request",
    "Response",
    "Retry",
    "RunState",
    "RuntimeRegistrar",
    "StateKey",
    "Stats",
    "StopInfo",
    "ToolCall",
    "ToolContext",
    "ToolRegistrar",
    "ToolResult",
    "ToolSpec",
    "ToolStrategy",
    "Usage",
    "events",
    "fold",
    "hookimpl",
    "merge_concurrent",
    "patches",
]
