"""The platform every feature stands on: the encrypted database and its migrations (`db`), the key hierarchy
(`keys`), encrypted audio blobs (`blobstore`), the tamper-evident audit log (`audit`), the job queue with
leases (`jobs`), the per-process `Appliance` context (`context`) and retention: deadlines and the
crypto-shredding purge (`retention`).

Imports only the kernel (`appliance.errors`, `clock`, `config`, `ports`, `ids`); every feature package
imports it, never the other way round (import-linter `layers` contract in pyproject.toml).
"""
