package mcpoauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"golang.org/x/oauth2"
)

// SDKHandler makes a Provider the Go MCP SDK's auth.OAuthHandler, so it
// plugs in wherever the SDK's own handler does
// (mcp.StreamableClientTransport.OAuthHandler). The SDK sets only an
// Authorization header: for DPoP-bound tokens use Transport instead.
type SDKHandler struct {
	Provider *Provider
}

var _ auth.OAuthHandler = (*SDKHandler)(nil)

// TokenSource gives the provider's current token, or nil before the first authorization.
func (h *SDKHandler) TokenSource(ctx context.Context) (oauth2.TokenSource, error) {
	hs, err := h.Provider.Headers(ctx, http.MethodPost, h.Provider.serverURL)
	if err != nil || hs == nil {
		return nil, err
	}
	if hs.Get("DPoP") != "" {
		return nil, errors.New("mcpoauth: a DPoP-bound token needs mcpoauth.Transport, not the SDK's OAuthHandler")
	}
	scheme, token, ok := strings.Cut(hs.Get("Authorization"), " ")
	if !ok {
		return nil, nil
	}
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token, TokenType: scheme}), nil
}

// Authorize hands the SDK's 401/403 response to the provider, which
// refreshes, runs the flow or steps up; nil means the SDK may retry.
func (h *SDKHandler) Authorize(ctx context.Context, req *http.Request, resp *http.Response) error {
	defer resp.Body.Close()
	retry, _, err := h.Provider.HandleResponse(ctx, req.Method, req.URL.String(), req.Header.Get("Authorization"), resp.StatusCode, resp.Header)
	if err != nil {
		return err
	}
	if !retry {
		return fmt.Errorf("mcpoauth: the server refused the request (%s) and there is nothing more to try", resp.Status)
	}
	return nil
}
