"""``python -m sentry`` is the ``pysentry`` command."""

from sentry.cli import entry_point

entry_point()
