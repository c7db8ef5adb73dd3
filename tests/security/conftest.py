"""Security regression tests (issue 13): each module makes one attack over HTTP (Django's
test client or the live server) and fails on the code from before its fix. Fixtures that
several modules share live in tests/conftest.py; a module's own fixtures live in it."""
