"""The SDK's ``mcp.client.auth.extensions`` paths: the machine-to-machine providers."""
