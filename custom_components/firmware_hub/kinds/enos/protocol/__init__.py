"""The enos wire protocol (no Home Assistant imports)."""
