"""The ``guardrails`` entry-point plugin: registered by autoload, it implements no hook.

Which inputs and answers a run may accept is a decision about one agent, so nothing
happens merely because the distribution is installed. Add
`agent_plugin_guardrails.Guardrails` to the agent explicitly::

    Agent(model=..., plugins=[Guardrails(input=[...], output=[...])])

.. versionadded:: 0.1
"""

name = "guardrails"
