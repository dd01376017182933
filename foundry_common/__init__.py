"""What both containers of the pod need, and nothing of either: the log set-up and its redaction,
secrets scrubbing, the tracing switch and SDK set-up, the token file's format (the sidecar writes
it, the gateway reads it), watched files and timestamps. Both images carry this package; neither
carries the other container's."""
