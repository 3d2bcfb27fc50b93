"""Enterprise-managed authorization (identity assertion, ID-JAG), where the MCP Python
SDK has it (``mcp.client.auth.extensions.identity_assertion``), with the provider that
runs both legs and the workload-identity provider beside it."""

from .._m2m import EnterpriseAuthOAuthProvider, IdentityAssertionOAuthProvider, WorkloadIdentityOAuthProvider

__all__ = ["EnterpriseAuthOAuthProvider", "IdentityAssertionOAuthProvider", "WorkloadIdentityOAuthProvider"]
