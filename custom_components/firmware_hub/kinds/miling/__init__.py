"""The miling device kind."""
