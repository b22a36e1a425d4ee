"""Shared firmware lifecycle: models, backend base, bridges, packages. No Home Assistant imports."""
