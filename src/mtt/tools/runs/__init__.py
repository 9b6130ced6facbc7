"""`mtt runs`."""
