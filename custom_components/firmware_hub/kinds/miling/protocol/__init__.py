"""The miling wire protocol (no Home Assistant imports)."""
