"""Worker processes: a spawned server, and ``compute_with_database``."""
