"""The peers' side: the Celery app and the RQ job and worker, doing dlsupervisor's database work."""
