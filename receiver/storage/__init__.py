"""Storage engines: the SQLite connection handling that every store uses."""
