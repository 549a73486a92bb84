"""Route modules, one per area of the HTTP contract."""
