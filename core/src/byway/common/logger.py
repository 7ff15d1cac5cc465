"""``from byway.common.logger import setup_logging``: by-framework's module path for
Byway's logging setup (:func:`byway.setup_logging`).

Unlike by-framework's, importing this module configures nothing, and ``setup_logging``
writes no file unless given ``log_file``; its default logger is the root (so the
application's lines and every library's are formatted alike).
"""

from __future__ import annotations

import logging

from byway._log import JsonFormatter, get_logger, setup_logging

__all__ = ["JSONFormatter", "JsonFormatter", "get_logger", "logger", "setup_logging"]

#: by-framework's spelling
JSONFormatter = JsonFormatter

#: Byway's own logger (configured by :func:`setup_logging`, or by the application)
logger: logging.Logger = get_logger("byway")
