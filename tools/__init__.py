"""Maintenance commands of the repository (not shipped in any distribution)."""
