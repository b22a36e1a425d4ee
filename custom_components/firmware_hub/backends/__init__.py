"""Firmware lifecycles, one per device kind, over the wire protocols.

No Home Assistant imports: a backend probes its device, checks for firmware, runs the
install state machine and produces `FirmwareState`.
"""
