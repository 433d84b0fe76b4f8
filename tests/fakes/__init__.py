"""Small local HTTP servers that speak the real protocols of external services, for tests."""
