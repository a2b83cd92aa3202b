"""IMS: the OAuth server-to-server token endpoint (``client_credentials``)."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from sync.peers.platform_api.state import ApiError, PeerState, json_response


def ims_token(state: PeerState, request: Request) -> Response:
    """OAuth server-to-server: ``client_credentials`` for the configured client (body or query)."""
    values = request.values
    if values.get("grant_type") != "client_credentials":
        raise ApiError(400, {"error": "unsupported_grant_type", "error_description": "unsupported grant_type"})
    if values.get("client_id") != state.config.client_id:
        raise ApiError(400, {"error": "invalid_client", "error_description": "invalid client_id parameter"})
    if values.get("client_secret") != state.config.client_secret:
        raise ApiError(400, {"error": "invalid_client", "error_description": "invalid client_secret parameter"})
    scope = values.get("scope") or ""
    if not scope.strip():
        raise ApiError(400, {"error": "invalid_scope", "error_description": "scope is required"})
    token = state.issue_token(state.config.client_id, scope)
    return json_response({"access_token": token, "token_type": "bearer", "expires_in": state.config.token_ttl})
