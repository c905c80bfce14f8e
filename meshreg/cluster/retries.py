"""Which failed requests are sent again, and how long meshreg waits before it does.

This is urllib3's `Retry`, which the official client hands to its connection pool (`Configuration.retries`), narrowed
to what is safe to send twice. meshreg sends up to 16 requests at once (meshreg.cluster.parallel), so an API server
protecting itself with API Priority and Fairness answers some of them 429 with a Retry-After.

- 429 Too Many Requests: the server refused before doing anything, so any request is sent again, after the
  Retry-After it asks for (at most RETRY_AFTER_MAX seconds) or the backoff.
- 5xx with a Retry-After (a server restarting, an aggregated API not ready): sent again only where a repeat does no
  harm, IDEMPOTENT. A 504 may come after the server stored the object, so a POST is never repeated.
- The connection could not be made (refused, no route, the name does not resolve): nothing was sent, so any request,
  but only CONNECT_ATTEMPTS more times, within a second: a server that is down is reported as such at once, as
  kubectl does, and a blip (a proxy or API server restarting) is ridden out.
- The connection broke after the request went out (reset, closed): only IDEMPOTENT requests, READ_ATTEMPTS more
  times. A POST that creates a verify Job may have been done already; sending it again could fail with
  AlreadyExists, or do it twice.
- A timeout (connect or read) is not retried: it has already waited its full time, which a retry would double.

The total wait is bounded: at most ATTEMPTS more tries per request, each after at most RETRY_AFTER_MAX seconds.
"""

from __future__ import annotations

import random

from urllib3.exceptions import NewConnectionError, ProtocolError, ProxyError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

ATTEMPTS = 5  # tries after the first
CONNECT_ATTEMPTS = 2  # after a refused connection: at once, then after 1 s
READ_ATTEMPTS = 3  # after a broken connection: at once, then after 1 s and 2 s
BACKOFF = 0.5  # seconds; urllib3 doubles it from the second retry on: 0, 1, 2, 4, 8
BACKOFF_MAX = 8.0
RETRY_AFTER_MAX = 10.0  # a longer Retry-After is shortened to this (the server asks for 1 s under API priority)
# Requests whose repeat changes nothing: reads, server-side apply (the same object applied again; meshreg sends no
# other PATCH), and DELETE (a second one answers 404, which meshreg reads as "already gone").
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
SERVER_ERRORS = frozenset({500, 502, 503, 504})


class ApiRetry(Retry):
    """urllib3's Retry with meshreg's rules (see the module docstring); `Retry.new` keeps the class on every copy."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return True
        return status_code in SERVER_ERRORS and has_retry_after and self._is_method_retryable(method)

    def _is_connection_error(self, err: Exception) -> bool:
        """Not connected at all (refused, unreachable, unresolved): a connect *timeout* is not retried."""
        if isinstance(err, ProxyError):
            err = err.original_error
        return isinstance(err, NewConnectionError)

    def _is_read_error(self, err: Exception) -> bool:
        """The connection broke after the request was sent: retried for IDEMPOTENT methods only. A read timeout
        counts as another error, and there are no retries for those."""
        return isinstance(err, ProtocolError)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """The server's Retry-After, at most RETRY_AFTER_MAX, plus up to 10% so that requests refused together do
        not all come back in the same instant."""
        seconds = super().get_retry_after(response)
        if seconds is None:
            return None
        seconds = min(seconds, RETRY_AFTER_MAX)
        return seconds + random.uniform(0, seconds / 10)

    def get_backoff_time(self) -> float:
        return min(super().get_backoff_time(), BACKOFF_MAX)


def policy() -> ApiRetry:
    """The retry policy of every Cluster connection (`client.connect`)."""
    return ApiRetry(total=ATTEMPTS, connect=CONNECT_ATTEMPTS, read=READ_ATTEMPTS, status=ATTEMPTS, other=0,
                    allowed_methods=IDEMPOTENT, backoff_factor=BACKOFF, raise_on_status=False,
                    respect_retry_after_header=True)
