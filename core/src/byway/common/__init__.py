"""by-framework's ``common`` module paths (``byway.common.logger``), for code written
against them; Byway's own names are importable from :mod:`byway`."""
