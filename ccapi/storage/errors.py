"""Which failures mean "the database cannot be reached" (a 503, retried by
the ledger) rather than a bug (a 500) or a bad row."""

from __future__ import annotations

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ccapi.core.errors import ProviderUnavailableError

# OperationalError covers a refused or dropped connection and a server shutting
# down (psycopg and sqlite3 both raise it); the pool's TimeoutError, every
# connection busy past `database_timeout`.
DATABASE_DOWN = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
# Around a Store call, also a socket error or timeout raised below the driver.
UNAVAILABLE = (*DATABASE_DOWN, OSError, TimeoutError)


def database_unavailable(exc: BaseException) -> bool:
    """`exc`, raised by a Store call, means the database cannot be reached."""
    return isinstance(exc, UNAVAILABLE)


def database_unavailable_error() -> ProviderUnavailableError:
    return ProviderUnavailableError(
        "The gateway's database is unavailable; retry shortly.", code="database_unavailable"
    )
