"""`mtt report`."""
