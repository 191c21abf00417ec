"""Benchmarks of the event log's append path, against baselines measured in the same run.

``make bench`` (or ``python -m bench --help``); what each figure means is in bench/README.md.
"""
