"""The simulations: the step (SimPy processes; the only package that imports simpy) and the run (one process per
replica, its clock jumping from event to event)."""
