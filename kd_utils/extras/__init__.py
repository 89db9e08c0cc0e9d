"""Beyond the core: what only notebooks 05-08 need, built on the core's loop,
teachers, run folders and metrics."""
