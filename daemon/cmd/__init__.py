"""Console entry points: thin wrappers that prepare config and hand over."""
