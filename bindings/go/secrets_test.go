package mcpoauth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mcpoauth "github.com/mcp-oauth-client/mcp-oauth-client/bindings/go"
)

// No secret in any log message, error or printed value, through the Go
// binding: a full flow of every grant the binding offers, against the real
// peers, with Options.Log at LogTrace, and fmt's %v, %+v and %#v of every
// option, provider and error met. The secrets actually used are collected
// from the wire (the OAuth requests go through Options.HTTPClient, whose
// transport records each exchange), the storage and the keys the test
// made; the test fails if any of them, or any 12-character window of one,
// shows in what was captured.

const secretWindow = 12

var secretFields = []string{
	"code", "code_verifier", "client_secret", "client_assertion", "refresh_token", "access_token",
	"id_token", "subject_token", "actor_token", "assertion", "device_code", "token", "registration_access_token",
}

type secretRun struct {
	mu      sync.Mutex
	secrets map[string]string // value -> what it was first met as
	kinds   map[string]bool   // every kind met
	printed []string
	logs    bytes.Buffer
	lines   int
}

func newSecretRun() *secretRun {
	return &secretRun{secrets: map[string]string{}, kinds: map[string]bool{}}
}

func (r *secretRun) secret(what, value string) {
	if value == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kinds[what] = true
	if _, known := r.secrets[value]; !known {
		r.secrets[value] = what
	}
}

func (r *secretRun) show(values ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		r.printed = append(r.printed, fmt.Sprintf("%v", v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v))
		if e, ok := v.(error); ok && e != nil {
			r.printed = append(r.printed, e.Error())
		}
	}
}

func (r *secretRun) log(level mcpoauth.LogLevel, target, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.logs, "%s %s %s\n", level, target, message)
	r.lines++
}

func (r *secretRun) header(name, value string) {
	switch strings.ToLower(name) {
	case "dpop":
		r.secret("DPoP proof", value)
	case "authorization":
		scheme, credentials, ok := strings.Cut(value, " ")
		if !ok {
			return
		}
		r.secret("authorization credentials", credentials)
		if strings.EqualFold(scheme, "basic") {
			raw, err := base64.StdEncoding.DecodeString(credentials)
			if err == nil {
				_, secret, _ := strings.Cut(string(raw), ":")
				if s, err := url.QueryUnescape(secret); err == nil {
					r.secret("client secret (basic)", s)
				}
			}
		}
	}
}

func (r *secretRun) body(b []byte) {
	var doc map[string]any
	if json.Unmarshal(b, &doc) == nil {
		for _, f := range secretFields {
			if s, ok := doc[f].(string); ok {
				r.secret(f, s)
			}
		}
		return
	}
	if len(b) > 0 && b[0] == '<' {
		return
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return
	}
	for _, f := range secretFields {
		for _, v := range form[f] {
			r.secret(f, v)
		}
	}
}

// storedJSON records the secrets of a stored tokens or client document.
func (r *secretRun) storedJSON(b []byte) {
	r.body(b)
}

// recorder is the host's HTTP client for the OAuth requests.
type recorder struct{ run *secretRun }

func (rec recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	for k, vs := range req.Header {
		for _, v := range vs {
			rec.run.header(k, v)
		}
	}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		rec.run.body(b)
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		rec.run.show(err)
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	rec.run.body(b)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// recordingPerson is testPerson, recording the authorization code.
type recordingPerson struct {
	*testPerson
	run *secretRun
}

func (p recordingPerson) Callback(ctx context.Context) (string, error) {
	back, err := p.testPerson.Callback(ctx)
	if u, perr := url.Parse(back); perr == nil {
		p.run.secret("authorization code", u.Query().Get("code"))
	}
	return back, err
}

func (r *secretRun) options(o mcpoauth.Options) mcpoauth.Options {
	o.ServerURL = peers.MCPURL
	o.HTTPClient = &http.Client{Transport: recorder{r}}
	o.Log = r.log
	o.LogLevel = mcpoauth.LogTrace
	o.Timeout = 20 * time.Second
	r.show(o)
	if o.IdentityAssertion != nil {
		r.show(*o.IdentityAssertion)
	}
	return o
}

// session initializes an MCP session through the provider's Transport.
func (r *secretRun) session(t *testing.T, p *mcpoauth.Provider) {
	t.Helper()
	r.show(p)
	client := &http.Client{Transport: &mcpoauth.Transport{Provider: p}}
	status, err := postInitialize(context.Background(), client, true)
	r.show(err)
	if err != nil || status != http.StatusOK {
		t.Fatalf("initialize: status %d, %v", status, err)
	}
	h, err := p.Headers(context.Background(), http.MethodPost, peers.MCPURL)
	if err != nil {
		t.Fatal(err)
	}
	// (the headers carry the token: the host sends them, never prints them)
	for k, vs := range h {
		for _, v := range vs {
			r.header(k, v)
		}
	}
}

func (r *secretRun) register(t *testing.T, meta map[string]any) (id, secret string) {
	t.Helper()
	meta["application_type"] = "web"
	b, _ := json.Marshal(meta)
	resp, err := http.Post(peers.Issuer+"/reg", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("registration: %v (status %d)", err, resp.StatusCode)
	}
	id, _ = c["client_id"].(string)
	secret, _ = c["client_secret"].(string)
	r.secret("pre-registered client secret", secret)
	if rat, ok := c["registration_access_token"].(string); ok {
		r.secret("registration access token", rat)
	}
	return id, secret
}

func (r *secretRun) ecKey(t *testing.T, what string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	r.secret(what+" (PEM)", p)
	r.secret(what+" (PEM body)", base64.StdEncoding.EncodeToString(der))
	d := make([]byte, 32)
	key.D.FillBytes(d)
	r.secret(what+" (JWK d)", base64.RawURLEncoding.EncodeToString(d))
	return p, key
}

func b64coord(n interface{ FillBytes([]byte) []byte }) string {
	b := make([]byte, 32)
	n.FillBytes(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// expired marks the stored tokens as expired a minute ago.
func expired(t *testing.T, s *memoryStorage) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var doc map[string]any
	if err := json.Unmarshal(s.tokens, &doc); err != nil {
		t.Fatal(err)
	}
	doc["expires_at"] = float64(time.Now().Add(-time.Minute).Unix())
	s.tokens, _ = json.Marshal(doc)
}

type failingStorage struct{ memoryStorage }

func (*failingStorage) SetTokens([]byte) error { return errors.New("the disk is full") }

func significantParts(secret string) []string {
	parts := strings.Split(secret, ".")
	if len(parts) == 3 && strings.HasPrefix(parts[0], "eyJ") {
		return parts[1:]
	}
	return []string{secret}
}

// findLeak returns the line of text where secret, or a piece of it, shows.
func findLeak(text, secret string) (string, bool) {
	line := func(at int) string {
		start := strings.LastIndexByte(text[:at], '\n') + 1
		end := strings.IndexByte(text[at:], '\n')
		if end < 0 {
			return text[start:]
		}
		return text[start : at+end]
	}
	if at := strings.Index(text, secret); at >= 0 {
		return line(at), true
	}
	for _, part := range significantParts(secret) {
		for i := 0; i+secretWindow <= len(part); i++ {
			if at := strings.Index(text, part[i:i+secretWindow]); at >= 0 {
				return line(at), true
			}
		}
	}
	return "", false
}

func TestNoSecretInLogsErrorsOrPrintedValues(t *testing.T) {
	r := newSecretRun()
	ctx := context.Background()
	flows := 0

	// The authorization-code flow with PKCE and dynamic registration:
	// public, then confidential with each secret method.
	for _, method := range []string{"", "client_secret_basic", "client_secret_post"} {
		meta := map[string]any{
			"client_name":   "secrets test",
			"redirect_uris": []string{"http://127.0.0.1:9/callback"},
			"grant_types":   []string{"authorization_code", "refresh_token"},
		}
		if method != "" {
			meta["token_endpoint_auth_method"] = method
		}
		mj, _ := json.Marshal(meta)
		person := recordingPerson{newTestPerson(), r}
		storage := &memoryStorage{}
		p, err := mcpoauth.New(r.options(mcpoauth.Options{
			ClientMetadataJSON: string(mj), Storage: storage, Redirect: person.Redirect, Callback: person.Callback,
		}))
		if err != nil {
			t.Fatal(err)
		}
		r.session(t, p)
		r.storedJSON(storage.tokens)
		r.storedJSON(storage.client)
		p.Close()
		flows++
		if method != "" {
			continue
		}
		// Refresh with rotation: a new provider over the stored tokens, expired.
		expired(t, storage)
		before := storage.tokens
		p, err = mcpoauth.New(r.options(mcpoauth.Options{
			ClientMetadataJSON: string(mj), Storage: storage, Redirect: person.Redirect, Callback: person.Callback,
		}))
		if err != nil {
			t.Fatal(err)
		}
		r.session(t, p)
		r.storedJSON(storage.tokens)
		if bytes.Equal(before, storage.tokens) || person.count() != 1 {
			t.Fatalf("expected a refresh, not a new authorization (%d)", person.count())
		}
		flows++
		// A 401 refusing a token the host sent: the provider authorizes again.
		bogus := base64.RawURLEncoding.EncodeToString([]byte("a token this server never issued, 0123456789"))
		r.secret("rejected access token", bogus)
		retry, h, err := p.HandleResponse(ctx, http.MethodPost, peers.MCPURL, "Bearer "+bogus, http.StatusUnauthorized,
			http.Header{"Www-Authenticate": {`Bearer error="invalid_token", error_description="the token is not valid"`}})
		r.show(retry, err)
		for k, vs := range h {
			for _, v := range vs {
				r.header(k, v)
			}
		}
		r.storedJSON(storage.tokens)
		p.Close()
		flows++
	}

	// Client credentials with a secret, DPoP-bound with a key made here,
	// and client_secret_post without DPoP.
	dpopPEM, _ := r.ecKey(t, "DPoP private key")
	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		id, secret := r.register(t, map[string]any{
			"grant_types": []string{"client_credentials"}, "response_types": []string{}, "redirect_uris": []string{},
			"token_endpoint_auth_method": method,
		})
		o := mcpoauth.Options{
			Grant: mcpoauth.ClientCredentials, ClientID: id, ClientSecret: secret, AuthMethod: method,
			Issuer: peers.Issuer, Storage: &memoryStorage{},
		}
		if method == "client_secret_basic" {
			o.DPoPKeyPEM, o.DPoPAlgorithm = dpopPEM, "ES256"
		}
		p, err := mcpoauth.New(r.options(o))
		if err != nil {
			t.Fatal(err)
		}
		r.session(t, p)
		p.Close()
		flows++
	}

	// private_key_jwt with a key made here.
	keyPEM, key := r.ecKey(t, "private_key_jwt key")
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "x": b64coord(key.X), "y": b64coord(key.Y), "use": "sig"}
	id, _ := r.register(t, map[string]any{
		"grant_types": []string{"client_credentials"}, "response_types": []string{}, "redirect_uris": []string{},
		"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
		"jwks": map[string]any{"keys": []any{jwk}},
	})
	p, err := mcpoauth.New(r.options(mcpoauth.Options{
		Grant: mcpoauth.ClientCredentials, ClientID: id, AuthMethod: "private_key_jwt", Issuer: peers.Issuer,
		PrivateKeyPEM: keyPEM, SigningAlgorithm: "ES256", Storage: &memoryStorage{},
	}))
	if err != nil {
		t.Fatal(err)
	}
	r.session(t, p)
	p.Close()
	flows++

	// Enterprise authorization: the ID token exchanged at the peers' IdP for
	// an ID-JAG, presented with the JWT-bearer grant.
	id, secret := r.register(t, map[string]any{
		"grant_types":    []string{"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"response_types": []string{}, "redirect_uris": []string{}, "token_endpoint_auth_method": "client_secret_post",
	})
	idTokenBody, _ := json.Marshal(map[string]string{"sub": "alice", "client_id": id})
	resp, err := http.Post(peers.ControlURL+"/id-token", "application/json", bytes.NewReader(idTokenBody))
	if err != nil {
		t.Fatal(err)
	}
	var issued struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&issued); err != nil || issued.IDToken == "" {
		t.Fatalf("id token: %v", err)
	}
	resp.Body.Close()
	r.secret("ID token", issued.IDToken)
	r.secret("IdP client secret", "idp-secret")
	p, err = mcpoauth.New(r.options(mcpoauth.Options{
		ClientID: id, ClientSecret: secret, AuthMethod: "client_secret_post", Issuer: peers.Issuer,
		Storage: &memoryStorage{},
		IdentityAssertion: &mcpoauth.IdentityAssertion{
			IdPTokenEndpoint: peers.Issuer + "/idp/token", IdPClientID: "idp-client", IdPClientSecret: "idp-secret",
			IDToken: issued.IDToken,
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	r.session(t, p)
	p.Close()
	flows++

	// Errors: a client secret the server never issued, and a storage that
	// cannot write.
	id, _ = r.register(t, map[string]any{
		"grant_types": []string{"client_credentials"}, "response_types": []string{}, "redirect_uris": []string{},
	})
	wrong := base64.RawURLEncoding.EncodeToString([]byte("a secret the server never issued!"))
	r.secret("wrong client secret", wrong)
	p, err = mcpoauth.New(r.options(mcpoauth.Options{
		Grant: mcpoauth.ClientCredentials, ClientID: id, ClientSecret: wrong, Issuer: peers.Issuer,
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Headers(ctx, http.MethodPost, peers.MCPURL)
	if err == nil {
		t.Fatal("a wrong client secret was accepted")
	}
	r.show(err)
	var oe *mcpoauth.Error
	if errors.As(err, &oe) {
		r.show(*oe)
	}
	p.Close()
	person := recordingPerson{newTestPerson(), r}
	p, err = mcpoauth.New(r.options(mcpoauth.Options{
		ClientMetadataJSON: clientMetadata, Storage: &failingStorage{}, Redirect: person.Redirect, Callback: person.Callback,
	}))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Authorize(ctx)
	if err == nil {
		t.Fatal("a storage that cannot write did not fail the flow")
	}
	r.show(err)
	p.Close()
	flows += 2

	// The Redis store's settings, printed: its URL's password and its keys.
	redisKey := make([]byte, 32)
	if _, err := rand.Read(redisKey); err != nil {
		t.Fatal(err)
	}
	password := base64.RawURLEncoding.EncodeToString(redisKey[:20])
	r.secret("Redis password", password)
	r.secret("Redis encryption key", fmt.Sprint(redisKey))
	r.secret("Redis encryption key", fmt.Sprintf("%x", redisKey))
	store := &mcpoauth.RedisStore{URL: "redis://fleet:" + password + "@127.0.0.1:6379/0",
		Keys: []mcpoauth.EncryptionKey{{ID: "k1", Key: redisKey}}}
	r.show(store, *store, mcpoauth.Options{ServerURL: peers.MCPURL, Redis: store})

	r.mu.Lock()
	defer r.mu.Unlock()
	logs := r.logs.String()
	printed := strings.Join(r.printed, "\n")
	t.Logf("%d flows; %d distinct secret values; %d bytes of log (%d messages), %d bytes of printed values",
		flows, len(r.secrets), len(logs), r.lines, len(printed))
	if !strings.Contains(logs, "TRACE") && !strings.Contains(logs, "DEBUG") {
		t.Fatalf("no DEBUG or TRACE message reached Options.Log:\n%s", logs)
	}
	canary := base64.RawURLEncoding.EncodeToString([]byte("canary secret of the detector itself"))
	if _, found := findLeak(logs+"\nx "+canary[4:20], canary); !found {
		t.Fatal("the detector missed the canary")
	}
	kinds := r.kinds
	for _, kind := range []string{
		"access_token", "refresh_token", "client secret (basic)", "client_secret", "code_verifier", "code",
		"client_assertion", "DPoP proof", "DPoP private key (JWK d)", "ID token", "subject_token", "assertion",
	} {
		if !kinds[kind] {
			t.Errorf("no %s was collected", kind)
		}
	}
	var leaks []string
	for value, what := range r.secrets {
		for _, place := range []struct{ name, text string }{{"log", logs}, {"printed values", printed}} {
			if line, found := findLeak(place.text, value); found {
				if len(line) > 300 {
					line = line[:300]
				}
				leaks = append(leaks, fmt.Sprintf("%s in the %s: %s", what, place.name, line))
			}
		}
	}
	sort.Strings(leaks)
	if len(leaks) > 0 {
		t.Fatalf("%d leaks:\n%s", len(leaks), strings.Join(leaks, "\n"))
	}
}
