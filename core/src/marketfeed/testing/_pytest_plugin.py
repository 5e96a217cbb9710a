"""pytest plugin of marketfeed's testing kit (loaded through the ``pytest11`` entry point).

Provides fixtures for plugin authors; see :mod:`marketfeed.testing`.
"""
