"""Rolling a migration out across many jobs: fleet parity, parity certificates, ``--backend
auto`` and shadow runs. Imports no engine; the runs themselves go through the ordinary runner."""
