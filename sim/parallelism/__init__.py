"""Pure: the rank mesh, groups and placement; pipeline schedules as ordered op lists."""
