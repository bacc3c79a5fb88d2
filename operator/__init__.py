"""The kopf operator for fairpack's custom resources (LLMService, SparkJob, Tenant).

It creates the workloads, admits queued work in UWFQ order and runs the CP-SAT fallback,
using ``fairpack.solver`` for every decision.
"""
