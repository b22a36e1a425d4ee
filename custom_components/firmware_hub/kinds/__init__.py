"""The device kinds: one package per kind."""
