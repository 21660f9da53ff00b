"""The worker process: the page loop and its leases, the arq jobs (downloads, webhooks, the cron), and
the page processes.

worker.py registers the jobs defined here; nothing in service/api/ imports this package.
"""
