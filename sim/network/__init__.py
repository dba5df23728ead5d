"""The fabric: which levels of the topology a group's traffic crosses, and at what bandwidth."""
