"""``python -m agent_kernel`` is the ``agent-kernel`` command."""

from ._cli import main

raise SystemExit(main())
