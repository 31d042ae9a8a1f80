"""Planning: chunk plans, estimates, dry runs and splits."""
