"""`create_tenant` and `seed_demo`."""
