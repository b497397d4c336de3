"""Usage: the SQLite store, history rows and the cache, statistics, prices and cost."""
