"""The ``limits`` entry-point plugin: registered by autoload, it implements no hook.

A budget is a decision about one agent, so nothing happens merely because the
distribution is installed. Add `agent_plugin_limits.Limits` to the agent explicitly::

    Agent(model=..., plugins=[Limits(max_steps=20, max_cost=0.50, prices={...})])

.. versionadded:: 0.1
"""

name = "limits"
