"""Metrics backends (Aetos, Prometheus) and the resolvers the transformer awaits.

``resolvers.build_resolver(conf)`` is the entry point; see docs/aetos.md.
"""

__all__ = ["aetos", "base", "keystone", "prometheus", "promql", "resolvers"]
