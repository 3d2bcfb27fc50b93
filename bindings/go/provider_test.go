package mcpoauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	mcpoauth "github.com/mcp-oauth-client/mcp-oauth-client/bindings/go"
)

// countingTransport counts the requests of the host's *http.Client.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// authorizedProvider is a provider that has logged in.
func authorizedProvider(tb testing.TB) *mcpoauth.Provider {
	person := newTestPerson()
	p, err := mcpoauth.New(mcpoauth.Options{ServerURL: peers.MCPURL, ClientMetadataJSON: clientMetadata, Redirect: person.Redirect, Callback: person.Callback})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	if err := p.Authorize(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newProvider(t *testing.T, storage mcpoauth.Storage, person *testPerson, oauthHTTP *http.Client) *mcpoauth.Provider {
	t.Helper()
	p, err := mcpoauth.New(mcpoauth.Options{
		ServerURL:          peers.MCPURL,
		ClientMetadataJSON: clientMetadata,
		Storage:            storage,
		HTTPClient:         oauthHTTP,
		Redirect:           person.Redirect,
		Callback:           person.Callback,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func listAndCall(t *testing.T, ctx context.Context, p *mcpoauth.Provider, text string) {
	t.Helper()
	listAndCallWith(t, ctx, &mcp.StreamableClientTransport{
		Endpoint:   peers.MCPURL,
		HTTPClient: &http.Client{Transport: &mcpoauth.Transport{Provider: p}},
	}, text)
}

func listAndCallWith(t *testing.T, ctx context.Context, transport *mcp.StreamableClientTransport, text string) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-oauth-client-go-test", Version: "0"}, nil)
	session, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer session.Close()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	names := map[string]bool{}
	for _, tool := range tools.Tools {
		names[tool.Name] = true
	}
	if !names["echo"] || !names["whoami"] {
		t.Fatalf("tools/list: %v", names)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("tools/call echo: %+v", res)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || !strings.Contains(tc.Text, text) {
		t.Fatalf("tools/call echo: %+v", res.Content[0])
	}
}

// The whole flow through the Go MCP SDK's client, then a second run from
// the stored tokens.
func TestSDKClientFlowThenStoredTokens(t *testing.T) {
	ctx := context.Background()
	storage := &memoryStorage{}
	person := newTestPerson()
	oauthHTTP := &countingTransport{}
	before := stateOfAS(t)

	p := newProvider(t, storage, person, &http.Client{Transport: oauthHTTP})
	listAndCall(t, ctx, p, "first run")
	after := stateOfAS(t)
	if person.count() != 1 || after.Authorizations != before.Authorizations+1 {
		t.Fatalf("first run: %d redirects of the person, authorizations %d -> %d", person.count(), before.Authorizations, after.Authorizations)
	}
	if oauthHTTP.n.Load() == 0 {
		t.Fatal("the OAuth requests did not go through the host's http.Client")
	}
	if storage.tokens == nil || storage.client == nil {
		t.Fatal("tokens and client information were not stored")
	}
	p.Close()

	person2 := newTestPerson()
	p2 := newProvider(t, storage, person2, nil)
	listAndCall(t, ctx, p2, "from storage")
	again := stateOfAS(t)
	if person2.count() != 0 || again.Authorizations != after.Authorizations || again.tokenRequests() != after.tokenRequests() {
		t.Fatalf("second run: %d redirects, authorizations %d -> %d, token requests %d -> %d",
			person2.count(), after.Authorizations, again.Authorizations, after.tokenRequests(), again.tokenRequests())
	}
}

// The provider as the SDK's own auth.OAuthHandler.
func TestSDKOAuthHandler(t *testing.T) {
	person := newTestPerson()
	p := newProvider(t, &memoryStorage{}, person, nil)
	before := stateOfAS(t)
	listAndCallWith(t, context.Background(), &mcp.StreamableClientTransport{
		Endpoint:     peers.MCPURL,
		OAuthHandler: &mcpoauth.SDKHandler{Provider: p},
	}, "through the SDK's handler")
	if after := stateOfAS(t); person.count() != 1 || after.Authorizations != before.Authorizations+1 {
		t.Fatalf("%d redirects of the person, authorizations %d -> %d", person.count(), before.Authorizations, after.Authorizations)
	}
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"go-test","version":"0"}}}`

func postInitialize(ctx context.Context, client *http.Client, replayable bool) (int, error) {
	var body io.Reader = strings.NewReader(initialize)
	if !replayable {
		body = io.NopCloser(bytes.NewBufferString(initialize)) // no GetBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peers.MCPURL, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && !bytes.Contains(b, []byte(`"serverInfo"`)) {
		return resp.StatusCode, errors.New("initialize: no serverInfo in the answer")
	}
	return resp.StatusCode, nil
}

// 16 goroutines send at once with no token held: every request succeeds,
// bodies replayed, and the person is asked once.
func TestSixteenGoroutines(t *testing.T) {
	person := newTestPerson()
	p := newProvider(t, &memoryStorage{}, person, nil)
	client := &http.Client{Transport: &mcpoauth.Transport{Provider: p}}
	before := stateOfAS(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			status, err := postInitialize(context.Background(), client, i%2 == 0)
			if err == nil && status != http.StatusOK {
				err = errors.New(http.StatusText(status))
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a request failed: %v", err)
		}
	}
	after := stateOfAS(t)
	if person.count() != 1 || after.Authorizations != before.Authorizations+1 {
		t.Fatalf("%d redirects of the person, authorizations %d -> %d", person.count(), before.Authorizations, after.Authorizations)
	}
}

// Cancelling the context while the person is away ends the operation in
// the library: Authorize returns at once with both causes, and, as nothing
// else waits for that log-in, the person's step is told to stop (its
// context ends) long before the authorization timeout.
func TestContextCancelledDuringPersonsStep(t *testing.T) {
	reached := make(chan struct{})
	dismissed := make(chan struct{})
	p, err := mcpoauth.New(mcpoauth.Options{
		ServerURL:            peers.MCPURL,
		ClientMetadataJSON:   clientMetadata,
		AuthorizationTimeout: 5 * time.Minute,
		Redirect: func(ctx context.Context, _ string) error {
			close(reached)
			return nil
		},
		Callback: func(ctx context.Context) (string, error) {
			<-ctx.Done() // the person never comes back
			close(dismissed)
			return "", ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-reached
		cancel()
	}()
	err = p.Authorize(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Authorize: %v, want context.Canceled", err)
	}
	var oe *mcpoauth.Error
	if !errors.As(err, &oe) || oe.Code != mcpoauth.ResultCancelled {
		t.Fatalf("Authorize: %v, want the library's cancellation", err)
	}
	select {
	case <-dismissed:
	case <-time.After(30 * time.Second):
		t.Fatal("the person's step was not told to stop after the only caller was cancelled")
	}
}

func registerClientCredentialsClient(t *testing.T) (id, secret string) {
	t.Helper()
	body := `{"grant_types":["client_credentials"],"response_types":[],"redirect_uris":[],"token_endpoint_auth_method":"client_secret_basic","application_type":"web"}`
	resp, err := http.Post(peers.Issuer+"/reg", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || c.ID == "" {
		t.Fatalf("registration: %v (status %d)", err, resp.StatusCode)
	}
	return c.ID, c.Secret
}

func TestClientCredentials(t *testing.T) {
	id, secret := registerClientCredentialsClient(t)
	storage := &memoryStorage{}
	p, err := mcpoauth.New(mcpoauth.Options{
		ServerURL: peers.MCPURL, Grant: mcpoauth.ClientCredentials,
		ClientID: id, ClientSecret: secret, AuthMethod: "client_secret_basic", Scope: "mcp:read",
		Storage: storage,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before := stateOfAS(t).TokenRequests["client_credentials"]
	status, err := postInitialize(context.Background(), &http.Client{Transport: &mcpoauth.Transport{Provider: p}}, true)
	if err != nil || status != http.StatusOK {
		t.Fatalf("initialize: status %d, %v", status, err)
	}
	if after := stateOfAS(t).TokenRequests["client_credentials"]; after != before+1 {
		t.Fatalf("client_credentials token requests %d -> %d", before, after)
	}
	if !bytes.Contains(storage.tokens, []byte("mcp:read")) {
		t.Fatal("the stored tokens do not carry the scope asked for")
	}
}

// A refused client secret is an *Error with the server's OAuth fields,
// and the secret is nowhere in it.
func TestClientCredentialsRefusedIsAnOAuthError(t *testing.T) {
	id, _ := registerClientCredentialsClient(t)
	const wrong = "not-the-secret-0123456789"
	p, err := mcpoauth.New(mcpoauth.Options{
		ServerURL: peers.MCPURL, Grant: mcpoauth.ClientCredentials,
		ClientID: id, ClientSecret: wrong, AuthMethod: "client_secret_basic",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = postInitialize(context.Background(), &http.Client{Transport: &mcpoauth.Transport{Provider: p}}, true)
	var oe *mcpoauth.Error
	if !errors.As(err, &oe) {
		t.Fatalf("initialize: %v, want an *mcpoauth.Error", err)
	}
	if oe.Code != mcpoauth.ResultInvalidConfiguration || oe.OAuthError != "invalid_client" || oe.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("error: code %v kind %q oauth %q status %d", oe.Code, oe.Kind, oe.OAuthError, oe.HTTPStatus)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(oe.OAuthErrorDescription, wrong) {
		t.Fatal("the secret is in the error")
	}
	if !errors.Is(err, &mcpoauth.Error{Code: mcpoauth.ResultInvalidConfiguration}) {
		t.Fatal("errors.Is by code")
	}
}

type dpopState struct {
	Accepted int            `json:"accepted"`
	Refused  map[string]int `json:"refused"`
}

func mcpDPoP(t *testing.T, method, body string) dpopState {
	t.Helper()
	path, r := "/state", io.Reader(nil)
	if method == http.MethodPost {
		path, r = "/dpop", strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, peers.MCPControl+path, r)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		DPoP *dpopState `json:"dpop"`
		dpopState
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.DPoP != nil {
		return *s.DPoP
	}
	return s.dpopState
}

// DPoP through the Transport: DPoP-bound tokens, proofs on every request,
// and the resource server's nonce challenge answered by one more round.
func TestDPoPWithNonceChallenge(t *testing.T) {
	mcpDPoP(t, http.MethodPost, `{"require_nonce": true, "rotate": true}`)
	t.Cleanup(func() { mcpDPoP(t, http.MethodPost, `{"require_nonce": false}`) })
	person := newTestPerson()
	p, err := mcpoauth.New(mcpoauth.Options{
		ServerURL: peers.MCPURL, ClientMetadataJSON: clientMetadata, DPoP: true,
		Redirect: person.Redirect, Callback: person.Callback,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before := mcpDPoP(t, http.MethodGet, "")
	listAndCall(t, context.Background(), p, "with DPoP")
	after := mcpDPoP(t, http.MethodGet, "")
	if after.Accepted <= before.Accepted {
		t.Fatalf("the MCP server accepted no DPoP request (%d -> %d)", before.Accepted, after.Accepted)
	}
	if after.Refused["use_dpop_nonce"] <= before.Refused["use_dpop_nonce"] {
		t.Fatalf("no nonce challenge was met: %v -> %v", before.Refused, after.Refused)
	}
	hs, err := p.Headers(context.Background(), http.MethodPost, peers.MCPURL)
	if err != nil || !strings.HasPrefix(hs.Get("Authorization"), "DPoP ") || hs.Get("DPoP") == "" {
		t.Fatalf("headers with a DPoP-bound token: %v %v", hs, err)
	}
}

type brokenStorage struct{ memoryStorage }

func (*brokenStorage) Tokens() ([]byte, error) { return nil, errors.New("disk unreadable") }

// A Storage that fails is the library's storage error, with the callback's code.
func TestStorageFailureIsAStorageError(t *testing.T) {
	p, err := mcpoauth.New(mcpoauth.Options{ServerURL: peers.MCPURL, ClientMetadataJSON: clientMetadata, Storage: &brokenStorage{}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Headers(context.Background(), http.MethodPost, peers.MCPURL)
	var oe *mcpoauth.Error
	if !errors.As(err, &oe) || oe.Code != mcpoauth.ResultStorage {
		t.Fatalf("Headers: %v, want a storage error", err)
	}
	if !oe.HasCallbackCode || oe.CallbackCode == 0 {
		t.Fatalf("the storage callback's code is not kept: %+v", oe)
	}
}

// A 403 insufficient_scope on tools/call: the Transport hands it to the
// provider, which steps up the scopes (the person again), and the call is retried.
func TestStepUpOnForbidden(t *testing.T) {
	person := newTestPerson()
	p := newProvider(t, &memoryStorage{}, person, nil)
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-oauth-client-go-test", Version: "0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   peers.MCPURL,
		HTTPClient: &http.Client{Transport: &mcpoauth.Transport{Provider: p}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "admin_action", Arguments: map[string]any{}})
	if err != nil || res.IsError || len(res.Content) == 0 {
		t.Fatalf("admin_action: %+v %v", res, err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || !strings.Contains(tc.Text, "admin action done") {
		t.Fatalf("admin_action: %+v", res.Content[0])
	}
	if person.count() != 2 {
		t.Fatalf("the person was asked %d times, want 2 (log-in, then step-up)", person.count())
	}
}

// Close while goroutines are on the hot path: every call either gets the
// headers of the stored token or, once closed, the closed error; none uses
// the freed provider (run with -race).
func TestCloseDuringHotPath(t *testing.T) {
	const server = "https://mcp.example.com/mcp"
	storage := &memoryStorage{tokens: []byte(`{"access_token": "hot-path-token", "token_type": "Bearer", "expires_in": 3600, "expires_at": 4102444800}`)}
	p, err := mcpoauth.New(mcpoauth.Options{
		ServerURL:          server,
		ClientMetadataJSON: `{"redirect_uris": ["http://127.0.0.1:9/cb"]}`,
		Storage:            storage,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if h, err := p.Headers(ctx, http.MethodPost, server); err != nil || h.Get("Authorization") != "Bearer hot-path-token" {
		t.Fatal("no header from the stored token", err)
	}
	var wg sync.WaitGroup
	served := make([]int, 8)
	failures := make(chan string, 8)
	for g := range served {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				h, err := p.Headers(ctx, http.MethodPost, server)
				if err != nil {
					if !strings.Contains(err.Error(), "closed") {
						failures <- err.Error()
					}
					return
				}
				if h.Get("Authorization") != "Bearer hot-path-token" {
					failures <- "wrong header"
					return
				}
				served[g]++
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	total := 0
	for _, n := range served {
		total += n
	}
	if total == 0 {
		t.Fatal("no goroutine got headers before Close")
	}
}

// SetHeaders sets the provider's headers on a host's own header map: the
// Authorization value replaces one already there, a DPoP header the token
// does not need is removed, other headers stay, and a URL of another origin
// gets nothing.
func TestSetHeadersOnTheHostsMap(t *testing.T) {
	const server = "https://mcp.example.com/mcp"
	storage := &memoryStorage{tokens: []byte(`{"access_token": "set-headers-token", "token_type": "Bearer", "expires_in": 3600, "expires_at": 4102444800}`)}
	p, err := mcpoauth.New(mcpoauth.Options{
		ServerURL:          server,
		ClientMetadataJSON: `{"redirect_uris": ["http://127.0.0.1:9/cb"]}`,
		Storage:            storage,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	h := http.Header{"Authorization": {"Bearer stale"}, "Dpop": {"old-proof"}, "Accept": {"application/json"}}
	for round := 0; round < 3; round++ {
		ok, err := p.SetHeaders(ctx, h, http.MethodPost, server)
		if err != nil || !ok {
			t.Fatalf("round %d: SetHeaders = %v, %v", round, ok, err)
		}
		if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer set-headers-token" {
			t.Fatalf("round %d: Authorization = %q", round, got)
		}
		if h.Get("Dpop") != "" || h.Get("Accept") != "application/json" {
			t.Fatalf("round %d: headers = %v", round, h)
		}
	}
	other := http.Header{}
	if ok, err := p.SetHeaders(ctx, other, http.MethodPost, "https://elsewhere.example.com/mcp"); err != nil || ok || len(other) != 0 {
		t.Fatalf("another origin: %v, %v, %v", ok, err, other)
	}
	if _, err := p.SetHeaders(ctx, nil, http.MethodPost, server); err == nil {
		t.Fatal("a nil header map was accepted")
	}
}
