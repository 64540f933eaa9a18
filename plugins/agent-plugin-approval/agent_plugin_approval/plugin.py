"""The ``approval`` entry-point plugin: registered by autoload, it implements no hook.

Requiring approval is a policy decision, so nothing changes merely because the
distribution is installed. Add `agent_plugin_approval.Approval` to the agent::

    Agent(model=..., plugins=[Approval(require_approval("shell", "write_*"))])

Note that this module is itself a plugin named ``approval``: in an agent that
autoloads plugins, give your `Approval` another name (``Approval(policy,
name="gate")``); ``block=["approval"]`` would block yours too.

.. versionadded:: 0.1
"""

name = "approval"
