"""IT tooling: the `appliance` command, install, keys, TLS, model bundles, preflight checks."""
