"""The ``retry`` entry-point plugin: registered by autoload, it implements no hook.

Retrying is a policy, so nothing happens merely because the distribution is
installed. Add `agent_plugin_retry.Retry` to the agent explicitly::

    Agent(model=..., plugins=[Retry(max_attempts=4, fallback=["openai:gpt-4o-mini"])])

.. versionadded:: 0.1
"""

name = "retry"
