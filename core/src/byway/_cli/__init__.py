"""The ``byway`` commands, one module per group; :mod:`byway.cli` assembles them."""
