"""The Watcher bridge: alarm events in, Watcher EVENT audits out (docs/watcher.md).

``rules`` (which alarms start which audit template, in the mapping's matching
language), ``state`` (what was done, durable), ``client`` (Watcher's API through
keystoneauth1), ``bridge`` (the decisions), ``consumer`` (the oslo.messaging
endpoint with its retries) and ``service`` (the process: ``run(conf)``).
"""

__all__: list[str] = []
