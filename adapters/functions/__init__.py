"""The Azure Functions host as a driving adapter: one blueprint per trigger family.

Importing these modules imports ``azure.functions`` and the light queue message only; the bridge
itself (engine, SDKs) is built on first use inside a worker, so the webhook path stays fast.
"""
