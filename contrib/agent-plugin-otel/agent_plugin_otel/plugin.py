"""The ``otel`` entry-point plugin: registered by autoload, it implements no hook.

Tracing is a decision about one agent (which provider, whether to record content),
so nothing happens merely because the distribution is installed. Add
`agent_plugin_otel.Telemetry` to the agent explicitly::

    Agent(model=..., plugins=[Telemetry()])

or configure it in ``agent.toml`` with an ``[plugins.otel]`` table (see
`agent_plugin_otel.Settings`).

.. versionadded:: 0.1
"""

name = "otel"
