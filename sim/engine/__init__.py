"""SimPy processes (the only package that imports simpy): the step and the run simulations."""
