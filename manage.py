#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - load the settings before Django does
    except ImproperlyConfigured as exc:
        # Django notes a settings error and goes on with no app loaded; whichever system
        # check runs first then fails with an unrelated error (for makemigrations,
        # "Models aren't loaded yet") instead of saying which secret is missing.
        sys.exit(f"ImproperlyConfigured: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
