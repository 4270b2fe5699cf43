"""What users write: the job file, the model bundle, its transforms and the ``[faults]`` testing
hook, each read by the one strict TOML reader (``common.spec.toml``). Imports no engine and no torch."""
