"""Development tooling: the local control plane, simulated GPU nodes and the demo.

Not shipped in the fairpack distribution. Run from the repository with
``PYTHONPATH=hack python -P -m fairpack_dev.<module>`` (the Makefile does this).
"""
