"""`make bench`: a reproducible load run of Itinera against its ceilings.

``python -m bench.run`` is the orchestrator; ``bench.ceiling`` is the bare
Starlette + asyncpg app every service figure is compared with.
"""
