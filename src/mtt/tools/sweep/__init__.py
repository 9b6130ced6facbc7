"""`mtt sweep`."""
