"""The CPL bridge's low-code layer: domain rules, flow definitions and the engine that runs them."""
