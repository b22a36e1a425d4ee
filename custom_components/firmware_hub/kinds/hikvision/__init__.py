"""The hikvision device kind."""
