"""The unit tier: tests that start no process (``pytest -m 'not slow'``). A package, so
its file names never clash with tests/ (module names unit.test_*)."""
