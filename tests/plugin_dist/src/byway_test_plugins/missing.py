"""A plugin whose optional dependency is not installed: skipped with one line."""

import byway_no_such_dependency  # noqa: F401

from byway import Plugin, PluginManifest


class NeedsMissingPlugin(Plugin):
    manifest = PluginManifest("needs-missing")
