"""Import shim (unused by the image path)."""
