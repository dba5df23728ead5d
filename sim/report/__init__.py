"""Results for people and programs: the JSON contract, text tables, plots, traces."""
