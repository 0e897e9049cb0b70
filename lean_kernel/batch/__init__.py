"""Batches: LeanServerPool, its jobs, scheduling, workers (threads or a cluster) and results,
and what the batch magics of both hosts keep between cells."""
