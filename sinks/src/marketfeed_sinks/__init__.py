"""Storage sinks for marketfeed. The ``sql`` sink lives in :mod:`marketfeed_sinks.sql`;
its public API is re-exported here."""

from .sql import *  # noqa: F403
from .sql import __all__ as _sql_all

__all__ = list(_sql_all)
