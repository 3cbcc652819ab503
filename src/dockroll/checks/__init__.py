"""What an environment's ``analysis:`` section says: conditions, selectors and settings.

Plain values and parsers, below :mod:`dockroll.config` (which validates
dockroll.yml with these models) and below :mod:`dockroll.analysis` (which runs
the checks). Nothing here imports either; the names stay importable from
``dockroll.analysis`` and its ``conditions``, ``selectors`` and ``settings``
modules.
"""
