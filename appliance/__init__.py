"""Samtalsstöd core domain: config, database, crypto, storage, jobs, audit, accounts, access.

Imports no Flask, no ML library and none of the other top-level packages
(checked by import-linter in `make test`).
"""
