"""Connector operations: what flow actions call. Each wraps domain rules and ports; none does I/O of
its own, and each returns JSON-shaped outputs that name no personal data (run history keeps them)."""
