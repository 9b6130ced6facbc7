"""`mtt store`."""
