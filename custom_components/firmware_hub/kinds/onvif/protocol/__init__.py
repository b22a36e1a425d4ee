"""The onvif wire protocol (no Home Assistant imports)."""
