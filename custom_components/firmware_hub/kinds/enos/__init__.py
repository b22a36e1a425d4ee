"""The enos device kind."""
