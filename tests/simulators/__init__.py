"""Loopback device simulators for tests and manual runs (no Home Assistant imports)."""
