"""The ``handoff`` entry-point plugin: registered by autoload, it implements no hook.

Which agents a run may delegate to is a decision about one agent, so nothing
happens merely because the distribution is installed. Add
`agent_plugin_handoff.Handoff` to the agent explicitly::

    Agent(model=..., plugins=[Handoff([SubAgent("researcher", "...", model=...)])])

.. versionadded:: 0.1
"""

name = "handoff"
