"""The report: figures and the self-contained HTML page drawn from the pipeline's tables.

``plan`` (which figures a grid gets; no torch), ``data`` (the inputs and their lookups),
``figures`` (the registry of figure builders; ``figures_*`` by topic, ``style`` and ``panels``
shared), ``html`` (the page; ``sections``, ``leaderboard``, ``sanity``, ``ablation``, ``clat``,
``provenance``, ``tables``, ``format``).
"""
