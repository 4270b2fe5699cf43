"""What users write: the job file, the model bundle, its transforms, the ``[parity]`` settings and
the ``[faults]`` testing hook, each read by the one strict TOML reader (``common.spec.toml``); the
backend and kind names those files may use (``backends``, ``kinds``); and the identity of a job's
result (``identity``). Imports no engine and no torch, and nothing of ``common`` but ``errors`` and
``sql`` (a transform's expression is compiled when the bundle loads)."""
