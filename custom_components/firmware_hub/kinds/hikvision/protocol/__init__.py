"""The hikvision wire protocol (no Home Assistant imports)."""
