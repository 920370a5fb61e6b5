"""User-facing programs around the engine: the ``csss`` command line (and later the call client)."""
