"""Pure scheduling algorithms: cluster model, GPU/MIG topology, CP-SAT packing, fair queueing.

Purely computational. No Kubernetes API calls, no web framework, no operator framework:
adapters here only turn plain Kubernetes object dicts (as ``kubectl get -o json`` prints
them) into the model.
"""
