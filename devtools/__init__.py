"""What the tests, the scripts (make demo, make soak) and the benchmarks all start and read: the
gateway, the emulators, Redis and the sidecar as real processes on loopback, their logs and
metrics. Not shipped: no image carries it."""
