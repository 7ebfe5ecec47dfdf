"""One module per environment family. Each exposes TextEnv subclasses named in registry.yaml."""
