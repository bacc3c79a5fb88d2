"""fairpack: a Kubernetes scheduling suite for GPU clusters.

Layers (import-linter contracts in pyproject.toml enforce them):

- ``fairpack.solver``: pure scheduling algorithms; no Kubernetes I/O.
- ``fairpack.extender``: the kube-scheduler extender webhook; uses the solver.
- ``fairpack.operator``: the kopf operator for fairpack's custom resources; uses the solver.
- ``fairpack.cli``: the ``fairpack`` command line; front end to the layers above.
"""

__version__ = "0.1.0"
