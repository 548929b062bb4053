"""What a repository holds and what may go: backup entries, retention, verification state."""
