"""``python -m byway``: the ``byway`` command, and by-framework's
``python -m by_framework --worker-class module.Class ...`` form (:mod:`byway._cli.compat`)."""

from __future__ import annotations

import sys

from byway._cli.compat import main

sys.exit(main())
