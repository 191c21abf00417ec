"""Benchmarks of the event log's append path and of notify's webhook latency, against baselines
measured in the same run.

``make bench`` (or ``python -m bench --help``); what each figure means is in bench/README.md.
"""
