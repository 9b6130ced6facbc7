"""`mtt baseline`."""
