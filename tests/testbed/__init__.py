"""The test bed: real brokers started by the test suite itself on loopback ports.

Each server class starts its broker as a child process of the test run, waits until the
broker answers, and offers ``stop()``, ``start()`` and ``restart()`` for fault tests. Ports
are chosen once, so a server's URL stays valid across restarts.
"""
