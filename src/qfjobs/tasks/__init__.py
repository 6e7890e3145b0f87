"""RQ job functions, the job runner and the worker."""
