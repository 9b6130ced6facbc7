"""`mtt promote`."""
