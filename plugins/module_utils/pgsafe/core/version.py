TOOL_NAME = "pgsafe"
TOOL_VERSION = "0.1.0"
