"""The shared core: errors, names, files, locks, logs, connections, client programs, streaming compression."""
