"""Benchmarks of Firmware Hub, run by ``scripts/bench`` (never by the test suite)."""
