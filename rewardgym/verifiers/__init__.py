"""One module per kind of check. Each exposes a Verifier subclass named in registry.yaml."""
