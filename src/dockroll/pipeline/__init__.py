"""The release pipeline's stages, composed from the engine, registry, ledger and router.

One module per stage: ``build``, ``smoke``, ``scan``, ``push``, ``promote``,
``mirror``, ``prune``, ``deploy``, ``status``. They are imported one by one
(nothing is re-exported here) so that a command loads only what it uses.
"""
