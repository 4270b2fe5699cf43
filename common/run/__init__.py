"""The driver: the backend contract, the runner (checks, preflight, engine, reconciliation,
atomic publish), input discovery and reading, the output folder, and the reference executor."""
