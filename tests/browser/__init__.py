"""A package, so its conftest.py does not shadow tests/conftest.py (both would be `conftest`)."""
