"""A discrete-event cluster simulator for the fair-queueing policies, its workloads and metrics.

Purely computational (no clock reads, no I/O beyond reading and writing workload files).
"""
