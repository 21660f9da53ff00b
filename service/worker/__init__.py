"""The worker process: the arq jobs, their leases and housekeeping, and the page processes.

worker.py registers the jobs defined here; nothing in service/api/ imports this package.
"""
