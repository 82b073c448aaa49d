"""Ciao from Python: the kernel's engine (the same Manager, S2I and backends) called from
any notebook, script or CI job. `import ciao` exposes these names lazily."""
