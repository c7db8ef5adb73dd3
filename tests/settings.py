"""Test settings: the production settings module with fresh throw-away secrets.

Nothing here is a committed secret: every key is generated per test session and handed to
the real Celery worker processes the tests start through the environment. DEBUG stays
false, so the tests run against the production configuration (except the HTTPS redirect and
secure cookies, which need TLS in front of the test server).
"""

import os

from portal.localsecrets import SECRET_NAMES, generate_secret

for _name in SECRET_NAMES:
    if not os.environ.get(_name):
        os.environ[_name] = generate_secret(_name)
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("DEBUG", "false")
# The test server is plain http: SMART test apps redirect to it.
os.environ.setdefault("SMART_REDIRECT_URI_SCHEMES", "http,https")
os.environ.setdefault(
    "PORTAL_LOCAL_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".local", "test")
)

from portal.settings import *  # noqa: E402,F403
from portal.settings import DATABASES, LOCAL_DIR  # noqa: E402

# Argon2 stays the algorithm (as in production) with cheap parameters, so fixtures that
# create many users do not spend seconds hashing.
PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that a real worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(LOCAL_DIR / "test-db.sqlite3")}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# whitenoise serves from the finders in tests (no collectstatic step needed).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
