"""The kube-scheduler extender webhook (filter, prioritize, preempt, bind).

The only layer that answers kube-scheduler. It keeps its own cluster view from a watch and
consults ``fairpack.solver`` for every decision.
"""
