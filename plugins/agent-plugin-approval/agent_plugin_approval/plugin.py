"""The ``approval`` entry-point plugin: registered by autoload, it implements no hook.

Requiring approval is a policy decision, so nothing changes merely because the
distribution is installed. Add `agent_plugin_approval.Approval` to the agent::

    Agent(model=..., plugins=[Approval(require_approval("shell", "write_*"))])

This module is itself a plugin named ``approval``; an `Approval` passed in code
(default name ``approval``) takes its place.

.. versionadded:: 0.1
"""

name = "approval"
