// Command mcp-go-client is an MCP client in Go: the Go MCP SDK's client over
// an http.Client whose transport is mcpoauth.Transport, so every OAuth step
// (discovery, registration, the person's step, tokens, refresh, step-up, DPoP)
// is the library's. It lists the server's tools and calls one.
//
//	mcp-go-client [flags] URL
//
// With no flag it logs in with the system browser and the library's loopback
// receiver and keeps tokens in the library's file store. It is also the Go
// client of the MCP conformance suite (tests/conformance/clients/go).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	mcpoauth "github.com/mcp-oauth-client/mcp-oauth-client/bindings/go"
)

type options struct {
	clientID, clientSecret, authMethod, issuer string
	privateKey, signingAlg                     string
	clientMetadataURL, scope, protocolVersion  string
	redirectURI                                string
	clientCredentials, headless, dpop          bool
	memoryStore                                bool
	storeDir                                   string
	idpTokenEndpoint, idpClientID              string
	idpClientSecret, idTokenFile               string
	workloadJWTFile                            string
	call, args                                 string
	noCall, quiet                              bool
	timeout                                    time.Duration
}

func main() {
	var o options
	fs := flag.NewFlagSet("mcp-go-client", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mcp-go-client [flags] URL\n\n"+
			"Connects to the MCP server at URL with the Go MCP SDK, authorized by\n"+
			"mcp-oauth-client, lists its tools and calls one (the first that needs no\n"+
			"arguments, or --call NAME --args JSON).\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.clientID, "client-id", "", "pre-registered client ID")
	fs.StringVar(&o.clientSecret, "client-secret", "", "pre-registered client secret")
	fs.StringVar(&o.authMethod, "auth-method", "", "token endpoint authentication method (default: from the server's metadata)")
	fs.StringVar(&o.issuer, "issuer", "", "the authorization server the pre-registered client belongs to")
	fs.StringVar(&o.privateKey, "private-key", "", "file with a PEM private key: private_key_jwt client authentication")
	fs.StringVar(&o.signingAlg, "signing-alg", "", "RS256, PS256 or ES256 for --private-key (default: from the key)")
	fs.StringVar(&o.clientMetadataURL, "client-metadata-url", "", "this client's Client ID Metadata Document URL")
	fs.StringVar(&o.scope, "scope", "", "scopes to ask for (default: the server's)")
	fs.StringVar(&o.protocolVersion, "protocol-version", "", "MCP protocol version (2025-11-25, 2026-07-28; default: the SDK's)")
	fs.StringVar(&o.redirectURI, "redirect-uri", "", "redirect URI for --headless (default http://127.0.0.1:33418/callback)")
	fs.BoolVar(&o.clientCredentials, "client-credentials", false, "the client credentials grant (needs --client-id)")
	fs.BoolVar(&o.headless, "headless", false, "no browser: follow the authorization URL's redirects back to the redirect URI (servers that approve at once)")
	fs.BoolVar(&o.dpop, "dpop", false, "DPoP-bound tokens (RFC 9449)")
	fs.BoolVar(&o.memoryStore, "memory-store", false, "keep nothing between runs")
	fs.StringVar(&o.storeDir, "token-dir", "", "directory of the file store (default: the library's)")
	fs.StringVar(&o.idpTokenEndpoint, "idp-token-endpoint", "", "enterprise-managed authorization: the IdP's token endpoint")
	fs.StringVar(&o.idpClientID, "idp-client-id", "", "enterprise-managed authorization: client ID at the IdP")
	fs.StringVar(&o.idpClientSecret, "idp-client-secret", "", "enterprise-managed authorization: client secret at the IdP")
	fs.StringVar(&o.idTokenFile, "id-token-file", "", "enterprise-managed authorization: file with the user's ID token")
	fs.StringVar(&o.workloadJWTFile, "workload-jwt-file", "", "workload identity: file with the platform's JWT")
	fs.StringVar(&o.call, "call", "", "the tool to call")
	fs.StringVar(&o.args, "args", "{}", "the tool's arguments (JSON object)")
	fs.BoolVar(&o.noCall, "no-call", false, "list tools only")
	fs.BoolVar(&o.quiet, "quiet", false, "print only errors")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "overall deadline")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		os.Exit(2)
	}
	if err := run(o, fs.Arg(0)); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		var oe *mcpoauth.Error
		if errors.As(err, &oe) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func (o *options) note(format string, a ...any) {
	if !o.quiet {
		fmt.Fprintf(os.Stderr, format+"\n", a...)
	}
}

// readSecret reads a file a host keeps a secret in (one line).
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func providerOptions(o options, serverURL string) (mcpoauth.Options, error) {
	opts := mcpoauth.Options{
		ServerURL:         serverURL,
		ClientID:          o.clientID,
		ClientSecret:      o.clientSecret,
		AuthMethod:        o.authMethod,
		Issuer:            o.issuer,
		Scope:             o.scope,
		DPoP:              o.dpop,
		ClientMetadataURL: o.clientMetadataURL,
		ProtocolVersion:   o.protocolVersion,
		StorageDir:        o.storeDir,
		SigningAlgorithm:  o.signingAlg,
		WorkloadJWTFile:   o.workloadJWTFile,
	}
	if o.clientCredentials {
		if o.clientID == "" {
			return opts, errors.New("--client-credentials needs --client-id")
		}
		opts.Grant = mcpoauth.ClientCredentials
	}
	if o.privateKey != "" {
		pem, err := os.ReadFile(o.privateKey)
		if err != nil {
			return opts, fmt.Errorf("--private-key: %w", err)
		}
		opts.PrivateKeyPEM = string(pem)
	}
	if o.idpTokenEndpoint != "" || o.idTokenFile != "" {
		if o.idpTokenEndpoint == "" || o.idTokenFile == "" {
			return opts, errors.New("enterprise-managed authorization needs --idp-token-endpoint and --id-token-file")
		}
		tok, err := readSecret(o.idTokenFile)
		if err != nil {
			return opts, fmt.Errorf("--id-token-file: %w", err)
		}
		opts.IdentityAssertion = &mcpoauth.IdentityAssertion{
			IdPTokenEndpoint: o.idpTokenEndpoint,
			IdPClientID:      o.idpClientID,
			IdPClientSecret:  o.idpClientSecret,
			IDToken:          tok,
		}
	}
	if o.memoryStore {
		opts.StorageDir = ""
	} else {
		opts.FileStore = true // in --token-dir, or the library's default directory
	}
	redirect := o.redirectURI
	if redirect == "" && o.headless {
		redirect = "http://127.0.0.1:33418/callback"
	}
	if redirect == "" {
		redirect = "http://127.0.0.1:0/callback" // the loopback receiver puts its port in
	}
	meta, _ := json.Marshal(map[string]any{
		"client_name":                "mcp-oauth-client Go example",
		"redirect_uris":              []string{redirect},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	opts.ClientMetadataJSON = string(meta)
	switch {
	case o.clientCredentials || o.workloadJWTFile != "" || opts.IdentityAssertion != nil:
		// No person: the grant needs none.
	case o.headless:
		h := &headless{redirectURI: redirect}
		opts.Redirect = h.redirect
		opts.Callback = h.callback
	default:
		opts.Loopback = true
	}
	return opts, nil
}

// headless is the person's step for servers that approve at once: GET the
// authorization URL and follow redirects until one goes to the redirect URI;
// that URL is the callback's answer.
type headless struct {
	redirectURI string
	mu          sync.Mutex
	answer      string
}

func (h *headless) redirect(ctx context.Context, authorizationURL string) error {
	client := &http.Client{
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), h.redirectURI) {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("more than 10 redirects")
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authorizationURL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("headless GET of the authorization URL: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	loc := resp.Header.Get("Location")
	if loc == "" {
		return fmt.Errorf("the authorization endpoint answered HTTP %d without a redirect", resp.StatusCode)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return fmt.Errorf("the authorization endpoint redirected to an invalid URL: %w", err)
	}
	h.mu.Lock()
	h.answer = u.String()
	h.mu.Unlock()
	return nil
}

func (h *headless) callback(ctx context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.answer
	h.answer = ""
	if a == "" {
		return "", errors.New("no redirect came back")
	}
	return a, nil
}

func run(o options, serverURL string) error {
	if u, err := url.Parse(serverURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("not an http(s) URL: %q", serverURL)
	}
	opts, err := providerOptions(o, serverURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	provider, err := mcpoauth.New(opts)
	if err != nil {
		return err
	}
	defer provider.Close()

	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-oauth-client-go-example", Version: "0.1.0"}, nil)
	transport := &mcp.StreamableClientTransport{
		Endpoint:             serverURL,
		HTTPClient:           &http.Client{Transport: &mcpoauth.Transport{Provider: provider}},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}
	o.note("connecting to %s", serverURL)
	session, err := client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: o.protocolVersion})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer session.Close()

	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	chosen := o.call
	o.note("%d tool(s):", len(tools.Tools))
	for _, t := range tools.Tools {
		o.note("  %-16s %s", t.Name, t.Description)
		if chosen == "" && !o.noCall && needsNoArguments(t) {
			chosen = t.Name
		}
	}
	if o.noCall {
		return nil
	}
	if chosen == "" {
		o.note("no tool without required arguments; use --call NAME --args JSON")
		return nil
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(o.args), &args); err != nil {
		return fmt.Errorf("--args is not a JSON object: %w", err)
	}
	o.note("tools/call %s", chosen)
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: chosen, Arguments: args})
	if err != nil {
		return fmt.Errorf("tools/call %s: %w", chosen, err)
	}
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			fmt.Println(tc.Text)
		}
	}
	if res.IsError {
		return fmt.Errorf("the tool %s reported an error", chosen)
	}
	return nil
}

// needsNoArguments reports whether a tool's input schema requires nothing.
func needsNoArguments(t *mcp.Tool) bool {
	b, err := json.Marshal(t.InputSchema)
	if err != nil {
		return false
	}
	var s struct {
		Required []string `json:"required"`
	}
	if json.Unmarshal(b, &s) != nil {
		return false
	}
	return len(s.Required) == 0
}
