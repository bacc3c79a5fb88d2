"""Fair queueing: which queued job gets the next free unit of capacity.

Purely computational: time is always passed in, nothing here reads a clock or does I/O.
``policy`` holds the job record and the tiny ordering interface every policy implements
(``uwfq`` and the ``baselines``, built by name in ``policies``), so an admission loop never
branches on the active policy;
``estimator`` guesses job sizes and ``partitioning`` recommends how finely to cut them.
"""
