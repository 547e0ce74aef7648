"""Engines that answer what the local store no longer holds (docs/scaling.md)."""
