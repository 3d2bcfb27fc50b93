"""The machine-to-machine and enterprise providers, at the module paths of the MCP
Python SDK's ``mcp.client.auth.extensions``."""
