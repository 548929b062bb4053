"""The pgsafe host command: argument parsing and one file per group of subcommands."""
