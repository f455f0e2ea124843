"""The low-code engine: flow definitions (YAML validated by pydantic), expressions, and the runner."""
