"""Business rules of the emergency CPL process: pure functions and models, no I/O."""
