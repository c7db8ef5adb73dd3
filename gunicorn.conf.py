"""gunicorn's settings for the portal: `gunicorn -c gunicorn.conf.py portal.wsgi` (gunicorn also
reads this file by itself when started from the repository's root, as `make run` does).

No health data in server logs. Searches carry names, birth dates and MRNs in their query
strings (the provider portal's ?q=, FHIR's ?name=, ?birthdate=, ?identifier=; FHIR clients
can use POST [type]/_search instead, but not every client will). So:

- the access log names the path without its query string: %(U)s, where gunicorn's default
  format has the whole request line, %(r)s; and it leaves out the Referer, %(f)s, which is the
  previous page's full URL, query string included;
- gunicorn's own error lines ("Error handling request GET /path?...", "Invalid request from
  ...") lose their query strings too.
"""

import logging
import re

from gunicorn import glogging

# host, -, user, [time], "METHOD /path PROTOCOL", status, bytes, seconds, "user agent"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'

_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")


class _NoQueryStrings(logging.Filter):
    """Cut the query string off every URL in a log line (the path stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = _QUERY.sub(r"\1", message), ()
        return True


_NO_QUERY_STRINGS = _NoQueryStrings()


class PortalLogger(glogging.Logger):
    """gunicorn's logger, with query strings cut out of its error log."""

    def setup(self, cfg) -> None:  # cfg: gunicorn.config.Config
        super().setup(cfg)
        self.error_log.addFilter(_NO_QUERY_STRINGS)  # once: addFilter skips a repeat


logger_class = PortalLogger
