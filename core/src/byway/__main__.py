"""``python -m byway`` is the ``byway`` command."""

from __future__ import annotations

import sys

from byway.cli import main

sys.exit(main())
