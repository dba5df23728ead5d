"""The fabric and what crosses it: ``graph`` (links of a job's topology, as arrays and as a networkx graph),
``sharing`` (max-min fair rates), ``flows`` (collective algorithms as flows), ``paths`` (the GroupPaths
the step is costed on, contention included), ``crossings`` (which groups cross which level) and
``nccl_tests`` (the model as nccl-tests measures it, against published figures)."""
