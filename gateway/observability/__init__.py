"""What the gateway tells operators: metrics, logs, and the per-request recorder that feeds both."""
