"""The ``output`` entry-point plugin: registered by autoload, it implements no hook.

Which type a run must produce is a decision about one agent, so nothing happens
merely because the distribution is installed. Add `agent_plugin_output.TypedOutput`
to the agent explicitly::

    Agent(model=..., plugins=[TypedOutput(MyAnswer)])

.. versionadded:: 0.1
"""

name = "output"
