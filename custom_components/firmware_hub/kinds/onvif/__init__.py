"""The onvif device kind."""
