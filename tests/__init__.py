"""Tests of the Firmware Hub integration."""
