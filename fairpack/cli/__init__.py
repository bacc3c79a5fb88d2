"""The ``fairpack`` command line: one sub-command per module (plan, replay, simulate, status)."""
