"""Health checks, alerts, metrics and restore drills."""
