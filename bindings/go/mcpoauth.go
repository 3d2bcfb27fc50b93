// Package mcpoauth is the Go binding of mcp-oauth-client: OAuth for MCP
// clients, over the library's C ABI (include/mcp_oauth.h). Every OAuth rule
// lives in the library; this package only carries values across.
//
// Build the static library first (cargo build --release -p
// mcp-oauth-client-ffi); see README.md.
package mcpoauth

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libmcp_oauth.a -lpthread -ldl -lm
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Grant selects the OAuth grant.
type Grant int

const (
	// AuthorizationCode is the authorization-code flow with PKCE, with a person (the default).
	AuthorizationCode Grant = iota
	// ClientCredentials is the client credentials grant; it needs ClientID.
	ClientCredentials
)

// LogLevel is the severity of a log message (Options.Log).
type LogLevel uint32

const (
	// LogError reports an operation that failed.
	LogError LogLevel = 1
	// LogWarn reports something ignored or worked around.
	LogWarn LogLevel = 2
	// LogInfo reports the steps of the flows (the default level).
	LogInfo LogLevel = 3
	// LogDebug adds each OAuth request and its status.
	LogDebug LogLevel = 4
	// LogTrace is the most verbose level.
	LogTrace LogLevel = 5
)

// String names the level.
func (l LogLevel) String() string {
	switch l {
	case LogError:
		return "ERROR"
	case LogWarn:
		return "WARN"
	case LogInfo:
		return "INFO"
	case LogDebug:
		return "DEBUG"
	case LogTrace:
		return "TRACE"
	}
	return fmt.Sprintf("LogLevel(%d)", uint32(l))
}

// Options configures a Provider. Only ServerURL is required.
type Options struct {
	// ServerURL is the MCP server's URL.
	ServerURL string
	// ClientMetadataJSON is the client metadata for dynamic registration
	// (RFC 7591), as JSON. Empty: the library's default.
	ClientMetadataJSON string
	// ClientID, ClientSecret, AuthMethod and Issuer describe a
	// pre-registered client (AuthMethod and Issuer may be empty).
	ClientID, ClientSecret, AuthMethod, Issuer string
	// Grant is the grant to use.
	Grant Grant
	// Scope asks for these scopes (space-separated); empty lets the library choose.
	Scope string
	// DPoP binds tokens to a key the library generates (RFC 9449).
	DPoP bool
	// Timeout bounds each OAuth request; zero is the library's default.
	Timeout time.Duration
	// Storage keeps tokens and client information. Nil with StorageDir
	// empty keeps them in memory.
	Storage Storage
	// StorageDir keeps them in a file per MCP server in this directory,
	// shared safely between processes.
	StorageDir string
	// FileStore keeps them in the library's file store in its default
	// directory (under $XDG_STATE_HOME or ~/.local/state) when StorageDir is empty.
	FileStore bool
	// Redis keeps them in Redis, shared by every process of a fleet (takes
	// precedence over StorageDir; Storage over it).
	Redis *RedisStore
	// HTTPClient sends the OAuth requests (discovery, registration,
	// tokens), so its proxy and TLS settings apply. Nil: http.DefaultClient.
	// Redirects are never followed for them.
	HTTPClient *http.Client
	// Redirect and Callback are the person's two steps of the
	// authorization-code flow: Redirect sends the person to the
	// authorization URL; Callback waits for them to come back and returns
	// the URL (or query string) they were redirected to. Both get a
	// context that ends when the library stops waiting.
	Redirect func(ctx context.Context, authorizationURL string) error
	Callback func(ctx context.Context) (string, error)
	// Loopback uses the library's own receiver on 127.0.0.1 and the
	// system browser instead of Redirect and Callback.
	Loopback bool
	// AuthorizationTimeout bounds the person's step; zero is the library's default.
	AuthorizationTimeout time.Duration

	// ClientMetadataURL is the URL of this client's Client ID Metadata
	// Document, used as its client_id where the authorization server supports it.
	ClientMetadataURL string
	// ProtocolVersion is the MCP protocol version the host speaks (for
	// example "2026-07-28"); empty: the library's default.
	ProtocolVersion string

	// PrivateKeyPEM authenticates the pre-registered client with
	// private_key_jwt (RFC 7523): a PEM private key (PKCS#8, PKCS#1 or SEC1)
	// for SigningAlgorithm ("RS256", "PS256" or "ES256"; empty: from the
	// key), with KeyID as the JWT's kid when not empty.
	PrivateKeyPEM, SigningAlgorithm, KeyID string

	// DPoPKeyPEM and DPoPAlgorithm give DPoP a key of the host's instead of
	// one the library generates (implies DPoP).
	DPoPKeyPEM, DPoPAlgorithm string

	// IdentityAssertion enables enterprise-managed authorization (ID-JAG):
	// the user's ID token is exchanged at the IdP for an assertion that the
	// pre-registered client presents to the MCP authorization server.
	IdentityAssertion *IdentityAssertion

	// Log receives this provider's log messages (its flows, refreshes and
	// requests) up to LogLevel: the level, where the message comes from
	// (a module path of the library) and one line of text. The library
	// never puts a token, secret, code or key in them. It is called on the
	// library's threads, possibly concurrently, and must return quickly.
	Log func(level LogLevel, target, message string)
	// LogLevel is the most verbose level sent to Log; zero: LogInfo.
	LogLevel LogLevel

	// WorkloadJWT, or WorkloadJWTFile (re-read when it changes), is the
	// platform's JWT for workload identity: the JWT-bearer grant with no
	// client secret. The pre-registered ClientID is required.
	WorkloadJWT, WorkloadJWTFile string
}

// IdentityAssertion configures enterprise-managed authorization.
type IdentityAssertion struct {
	// IdPTokenEndpoint is the enterprise IdP's token endpoint (RFC 8693 exchange).
	IdPTokenEndpoint string
	// IdPClientID and IdPClientSecret authenticate this client at the IdP
	// (both may be empty).
	IdPClientID, IdPClientSecret string
	// IDToken is the user's ID token from the IdP.
	IDToken string
}

// RedisStore is the library's Redis store: tokens and registrations shared
// by a fleet of processes, refreshed once (a lease in Redis), encrypted at
// rest. See the repository README's Redis section.
type RedisStore struct {
	// URL is redis://[user[:password]@]host[:port][/db], rediss://... for
	// TLS, or the URLs of several nodes of a Redis Cluster separated by commas.
	URL string
	// KeyPrefix prefixes every key; empty: "mcp-oauth".
	KeyPrefix string
	// Keys encrypt the values (AES-256-GCM): the first encrypts every
	// write, all of them decrypt (rotation). Required unless
	// AllowUnencryptedValues.
	Keys []EncryptionKey
	// AllowUnencryptedValues stores tokens and client secrets as plain
	// JSON, readable by anyone who can read the Redis database.
	AllowUnencryptedValues bool
}

// EncryptionKey is a 32-byte key and the id stored beside each value it encrypts.
type EncryptionKey struct {
	ID  string
	Key []byte
}

func setRedis(b *C.mcp_oauth_config_builder, r *RedisStore, cerr **C.mcp_oauth_error) C.mcp_oauth_result {
	u := C.CString(r.URL)
	rc := C.mcp_oauth_config_builder_set_storage_redis(b, u, cerr)
	C.free(unsafe.Pointer(u))
	if rc != 0 {
		return rc
	}
	if r.KeyPrefix != "" {
		p := C.CString(r.KeyPrefix)
		rc = C.mcp_oauth_config_builder_set_redis_key_prefix(b, p)
		C.free(unsafe.Pointer(p))
		if rc != 0 {
			return rc
		}
	}
	for _, k := range r.Keys {
		id := C.CString(k.ID)
		var key *C.uint8_t
		if len(k.Key) > 0 {
			key = (*C.uint8_t)(C.CBytes(k.Key))
		} else {
			key = (*C.uint8_t)(C.malloc(1))
		}
		rc = C.mcp_oauth_config_builder_add_redis_encryption_key(b, id, key, C.size_t(len(k.Key)), cerr)
		// The copy is wiped before it is freed.
		clear(unsafe.Slice((*byte)(unsafe.Pointer(key)), max(len(k.Key), 1)))
		C.free(unsafe.Pointer(key))
		C.free(unsafe.Pointer(id))
		if rc != 0 {
			return rc
		}
	}
	return C.mcp_oauth_config_builder_set_redis_allow_unencrypted_values(b, C.bool(r.AllowUnencryptedValues))
}

// Provider gives the headers for MCP requests and runs the OAuth flows.
// It is safe for concurrent use. Close it when done.
type Provider struct {
	mu sync.RWMutex
	// hot guards p for the hot path (Headers with a valid token) apart from
	// mu, whose reader count is one shared counter: with it, goroutines on
	// several cores would all write one cache line on every request.
	hot       readLocks
	p         *C.mcp_oauth_provider
	serverURL string
	// lastAuth is the last Authorization value the hot path gave (a token:
	// held only as the headers given to requests are).
	lastAuth atomic.Pointer[string]
}

// readLocks is a reader lock without a shared write on the read path: a
// reader takes one of several locks, each on its own cache line, picked at
// random (math/rand/v2's generator is per thread); a writer takes them all.
type readLocks [8]struct {
	sync.RWMutex
	_ [64 - unsafe.Sizeof(sync.RWMutex{})%64]byte
}

func (l *readLocks) rlock() *sync.RWMutex {
	m := &l[rand.Uint32()%uint32(len(l))].RWMutex
	m.RLock()
	return m
}

func (l *readLocks) lock() {
	for i := range l {
		l[i].Lock()
	}
}

func (l *readLocks) unlock() {
	for i := range l {
		l[i].Unlock()
	}
}

func cstr(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

func freeSecret(s *C.char) { C.mcpgo_free_secret(s) }

// New builds a provider. It makes no network request.
func New(opts Options) (*Provider, error) {
	b := C.mcp_oauth_config_builder_new()
	if b == nil {
		return nil, errors.New("mcpoauth: the library could not allocate a builder")
	}
	var cerr *C.mcp_oauth_error
	fail := func(rc C.mcp_oauth_result) (*Provider, error) {
		C.mcp_oauth_config_builder_free(b)
		return nil, takeError(rc, cerr)
	}
	s := cstr(opts.ServerURL)
	rc := C.mcp_oauth_config_builder_set_server_url(b, s)
	C.free(unsafe.Pointer(s))
	if rc != 0 {
		return fail(rc)
	}
	if opts.ClientMetadataJSON != "" {
		m := cstr(opts.ClientMetadataJSON)
		rc = C.mcp_oauth_config_builder_set_client_metadata_json(b, m)
		C.free(unsafe.Pointer(m))
		if rc != 0 {
			return fail(rc)
		}
	}
	if opts.ClientID != "" {
		id, sec, am, iss := cstr(opts.ClientID), cstr(opts.ClientSecret), cstr(opts.AuthMethod), cstr(opts.Issuer)
		rc = C.mcp_oauth_config_builder_set_static_client(b, id, sec, am, iss)
		C.free(unsafe.Pointer(id))
		freeSecret(sec)
		C.free(unsafe.Pointer(am))
		C.free(unsafe.Pointer(iss))
		if rc != 0 {
			return fail(rc)
		}
	}
	if opts.Grant == ClientCredentials {
		if rc = C.mcp_oauth_config_builder_set_grant(b, C.MCP_OAUTH_GRANT_CLIENT_CREDENTIALS, &cerr); rc != 0 {
			return fail(rc)
		}
	}
	if opts.Scope != "" {
		sc := cstr(opts.Scope)
		rc = C.mcp_oauth_config_builder_set_scope(b, sc)
		C.free(unsafe.Pointer(sc))
		if rc != 0 {
			return fail(rc)
		}
	}
	if opts.DPoP && opts.DPoPKeyPEM == "" {
		if rc = C.mcp_oauth_config_builder_set_dpop(b, true); rc != 0 {
			return fail(rc)
		}
	}
	if opts.DPoPKeyPEM != "" {
		k, alg := cstr(opts.DPoPKeyPEM), cstr(opts.DPoPAlgorithm)
		rc = C.mcp_oauth_config_builder_set_dpop_key(b, k, alg)
		freeSecret(k)
		C.free(unsafe.Pointer(alg))
		if rc != 0 {
			return fail(rc)
		}
	}
	if opts.PrivateKeyPEM != "" {
		k, alg, kid := cstr(opts.PrivateKeyPEM), cstr(opts.SigningAlgorithm), cstr(opts.KeyID)
		rc = C.mcp_oauth_config_builder_set_private_key_jwt(b, k, alg, kid, &cerr)
		freeSecret(k)
		C.free(unsafe.Pointer(alg))
		C.free(unsafe.Pointer(kid))
		if rc != 0 {
			return fail(rc)
		}
	}
	if opts.ClientMetadataURL != "" {
		u := cstr(opts.ClientMetadataURL)
		rc = C.mcp_oauth_config_builder_set_client_metadata_url(b, u)
		C.free(unsafe.Pointer(u))
		if rc != 0 {
			return fail(rc)
		}
	}
	if opts.ProtocolVersion != "" {
		v := cstr(opts.ProtocolVersion)
		rc = C.mcp_oauth_config_builder_set_protocol_version(b, v)
		C.free(unsafe.Pointer(v))
		if rc != 0 {
			return fail(rc)
		}
	}
	if ia := opts.IdentityAssertion; ia != nil {
		ep, id, sec, tok := cstr(ia.IdPTokenEndpoint), cstr(ia.IdPClientID), cstr(ia.IdPClientSecret), cstr(ia.IDToken)
		rc = C.mcp_oauth_config_builder_set_identity_assertion(b, ep, id, sec, tok)
		C.free(unsafe.Pointer(ep))
		C.free(unsafe.Pointer(id))
		freeSecret(sec)
		freeSecret(tok)
		if rc != 0 {
			return fail(rc)
		}
	}
	if opts.WorkloadJWT != "" || opts.WorkloadJWTFile != "" {
		j, f := cstr(opts.WorkloadJWT), cstr(opts.WorkloadJWTFile)
		rc = C.mcp_oauth_config_builder_set_workload_identity(b, j, f)
		freeSecret(j)
		C.free(unsafe.Pointer(f))
		if rc != 0 {
			return fail(rc)
		}
	}
	if opts.AuthorizationTimeout > 0 {
		ms := C.uint64_t(opts.AuthorizationTimeout.Milliseconds())
		if rc = C.mcp_oauth_config_builder_set_authorization_timeout_ms(b, ms, &cerr); rc != 0 {
			return fail(rc)
		}
	}
	if opts.Timeout > 0 {
		if rc = C.mcp_oauth_config_builder_set_timeout_ms(b, C.uint64_t(opts.Timeout.Milliseconds()), &cerr); rc != 0 {
			return fail(rc)
		}
	}
	switch {
	case opts.Storage != nil:
		h := cgo.NewHandle(opts.Storage)
		if rc = C.mcpgo_set_storage(b, C.uintptr_t(h), &cerr); rc != 0 {
			h.Delete()
			return fail(rc)
		}
	case opts.Redis != nil:
		if rc = setRedis(b, opts.Redis, &cerr); rc != 0 {
			return fail(rc)
		}
	case opts.StorageDir != "" || opts.FileStore:
		d := cstr(opts.StorageDir)
		rc = C.mcp_oauth_config_builder_set_storage_file(b, d)
		C.free(unsafe.Pointer(d))
		if rc != 0 {
			return fail(rc)
		}
	default:
		if rc = C.mcp_oauth_config_builder_set_storage_memory(b); rc != 0 {
			return fail(rc)
		}
	}
	if opts.Log != nil {
		level := opts.LogLevel
		if level == 0 {
			level = LogInfo
		}
		if level < LogError || level > LogTrace {
			C.mcp_oauth_config_builder_free(b)
			return nil, fmt.Errorf("mcpoauth: unknown LogLevel %d", level)
		}
		lh := cgo.NewHandle(opts.Log)
		if rc = C.mcpgo_set_log(b, C.uintptr_t(lh), C.uint32_t(level), &cerr); rc != 0 {
			lh.Delete()
			return fail(rc)
		}
	}
	client := opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	th := cgo.NewHandle(newTransportBridge(client))
	if rc = C.mcpgo_set_transport(b, C.uintptr_t(th), &cerr); rc != 0 {
		th.Delete()
		return fail(rc)
	}
	switch {
	case opts.Loopback:
		if rc = C.mcp_oauth_config_builder_set_loopback_handler(b, nil, 0); rc != 0 {
			return fail(rc)
		}
	case opts.Redirect != nil && opts.Callback != nil:
		ah := cgo.NewHandle(&person{redirect: opts.Redirect, callback: opts.Callback})
		if rc = C.mcpgo_set_authorization(b, C.uintptr_t(ah), &cerr); rc != 0 {
			ah.Delete()
			return fail(rc)
		}
	case opts.Redirect != nil || opts.Callback != nil:
		C.mcp_oauth_config_builder_free(b)
		return nil, errors.New("mcpoauth: Options.Redirect and Options.Callback go together")
	}
	var p *C.mcp_oauth_provider
	// build consumes the builder whatever happens.
	if rc = C.mcp_oauth_config_builder_build(b, &p, &cerr); rc != 0 {
		return nil, takeError(rc, cerr)
	}
	pr := &Provider{p: p, serverURL: opts.ServerURL}
	runtime.SetFinalizer(pr, (*Provider).Close)
	return pr, nil
}

// Close frees the provider; operations still running end with an error.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hot.lock()
	defer p.hot.unlock()
	if p.p != nil {
		C.mcp_oauth_provider_free(p.p)
		p.p = nil
		runtime.SetFinalizer(p, nil)
	}
	p.lastAuth.Store(nil)
	return nil
}

var errClosed = errors.New("mcpoauth: provider closed")

// RedirectURI is the redirect URI in use (the loopback receiver's, once bound).
func (p *Provider) RedirectURI() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.p == nil {
		return ""
	}
	return C.GoString(C.mcp_oauth_provider_redirect_uri(p.p))
}

// outcome is what a completion hands back to the goroutine waiting for it.
type outcome struct {
	headers http.Header
	retry   bool
	err     error
}

// run starts an operation and waits for its completion or for ctx; when ctx
// ends first, the operation is cancelled in the library and its completion
// awaited, so nothing of it outlives the call.
func (p *Provider) run(ctx context.Context, start func(p *C.mcp_oauth_provider, h C.uintptr_t, op **C.mcp_oauth_operation) C.mcp_oauth_result) outcome {
	if err := ctx.Err(); err != nil {
		return outcome{err: err}
	}
	ch := make(chan outcome, 1)
	h := cgo.NewHandle(ch)
	var op *C.mcp_oauth_operation
	p.mu.RLock()
	if p.p == nil {
		p.mu.RUnlock()
		h.Delete()
		return outcome{err: errClosed}
	}
	rc := start(p.p, C.uintptr_t(h), &op)
	p.mu.RUnlock()
	if rc != 0 {
		h.Delete()
		return outcome{err: takeError(rc, nil)}
	}
	defer C.mcp_oauth_operation_free(op)
	select {
	case o := <-ch:
		return o
	case <-ctx.Done():
		C.mcp_oauth_operation_cancel(op)
		o := <-ch
		if o.err != nil {
			o.err = joinCtx(ctx.Err(), o.err)
		}
		return o
	}
}

func joinCtx(ctxErr, err error) error {
	var e *Error
	if errors.As(err, &e) && e.Code == ResultCancelled {
		return &cancelledError{ctx: ctxErr, err: e}
	}
	return err
}

type cancelledError struct {
	ctx error
	err *Error
}

func (c *cancelledError) Error() string   { return c.ctx.Error() + ": " + c.err.Error() }
func (c *cancelledError) Unwrap() []error { return []error{c.ctx, c.err} }

// Headers returns the headers to set on a request (Authorization, and DPoP
// with a DPoP-bound token), or nil when there is no usable token yet or the
// URL is not the MCP server's. With a valid token held it does not wait;
// otherwise it may load or refresh tokens, until ctx ends.
func (p *Provider) Headers(ctx context.Context, method, url string) (http.Header, error) {
	if h, ok := p.tryHeaders(method, url); ok {
		return h, nil
	}
	cm, cu := C.CString(method), C.CString(url)
	defer C.free(unsafe.Pointer(cm))
	defer C.free(unsafe.Pointer(cu))
	o := p.run(ctx, func(pp *C.mcp_oauth_provider, h C.uintptr_t, op **C.mcp_oauth_operation) C.mcp_oauth_result {
		return C.mcpgo_get_headers_start(pp, cm, cu, h, op)
	})
	return o.headers, o.err
}

// SetHeaders sets on h the headers a request to url needs (Authorization,
// and DPoP with a DPoP-bound token), as Headers gives them, and removes a
// DPoP header the request no longer needs. It reports whether it set any:
// false when there is no usable token yet or the URL is not the MCP server's.
// With a valid token held it does not wait and, once the token has been
// seen, allocates nothing: a host that sets headers on its own requests
// pays no more than the one call into the library.
func (p *Provider) SetHeaders(ctx context.Context, h http.Header, method, url string) (bool, error) {
	if h == nil {
		return false, errors.New("mcpoauth: SetHeaders needs a non-nil http.Header")
	}
	if ok := p.tryHeadersInto(h, method, url); ok {
		return true, nil
	}
	got, err := p.Headers(ctx, method, url)
	if err != nil || got == nil {
		return false, err
	}
	h.Del("Dpop")
	for k, v := range got {
		h[k] = v
	}
	return true, nil
}

func (p *Provider) tryHeaders(method, url string) (http.Header, bool) {
	h := make(http.Header, 2)
	if !p.tryHeadersInto(h, method, url) {
		return nil, false
	}
	return h, true
}

func (p *Provider) tryHeadersInto(h http.Header, method, url string) bool {
	if len(method) == 0 || len(url) == 0 {
		return false
	}
	bp := headerBufs.Get().(*[]byte)
	defer headerBufs.Put(bp)
	buf := *bp
	defer p.hot.rlock().RUnlock()
	if p.p == nil {
		return false
	}
	for {
		// One cgo call: C reads the strings in place and writes the headers
		// into buf (Go memory without Go pointers, held only during the call).
		n := int64(C.mcpgo_try_headers(p.p,
			(*C.char)(unsafe.Pointer(unsafe.StringData(method))), C.size_t(len(method)),
			(*C.char)(unsafe.Pointer(unsafe.StringData(url))), C.size_t(len(url)),
			(*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))))
		if n == 0 {
			return false
		}
		if n < 0 {
			buf = make([]byte, -n)
			continue
		}
		p.setHeaderPairs(h, buf[:n])
		clear(buf[:n]) // it held the token
		return true
	}
}

// headerBufs holds buffers for the hot path's headers (an Authorization
// value, and a DPoP proof of about 1 KB).
var headerBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// headerName is the canonical form of a header name from the library,
// without allocating for the two it sends.
func headerName(b []byte) string {
	switch string(b) {
	case "authorization":
		return "Authorization"
	case "dpop":
		return "Dpop"
	}
	return http.CanonicalHeaderKey(string(b))
}

// setHeaderPairs sets on h the "name\0value\0" pairs of b, and removes a
// DPoP header when b has none. The Authorization value is the same string
// from one request to the next while the token is: it is kept (lastAuth) and
// given again, without allocating, when the bytes match.
func (p *Provider) setHeaderPairs(h http.Header, b []byte) {
	dpop := false
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			break
		}
		name := headerName(b[:i])
		b = b[i+1:]
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			break
		}
		value := b[:j]
		b = b[j+1:]
		if name == "Authorization" {
			setOne(h, name, p.authorizationString(value))
			continue
		}
		dpop = dpop || name == "Dpop"
		h[name] = []string{string(value)}
	}
	if !dpop {
		delete(h, "Dpop")
	}
}

// authorizationString is value as a string: the last one made when the bytes
// are the same (no allocation), a new one otherwise.
func (p *Provider) authorizationString(value []byte) string {
	if last := p.lastAuth.Load(); last != nil && *last == string(value) {
		return *last
	}
	s := string(value)
	p.lastAuth.Store(&s)
	return s
}

// setOne sets h[name] to the one value v, leaving h untouched when it
// already holds exactly that.
func setOne(h http.Header, name, v string) {
	if old := h[name]; len(old) == 1 && old[0] == v {
		return
	}
	h[name] = []string{v}
}

func goHeaders(hs *C.mcp_oauth_headers) http.Header {
	if hs == nil {
		return nil
	}
	n := C.mcp_oauth_headers_count(hs)
	out := make(http.Header, n)
	for i := C.size_t(0); i < n; i++ {
		out.Add(C.GoString(C.mcp_oauth_headers_name(hs, i)), C.GoString(C.mcp_oauth_headers_value(hs, i)))
	}
	return out
}

// HandleResponse hands the provider a 401/403 response to a request that
// carried sentAuthorization ("" for none): it refreshes, runs the whole
// flow or steps up the scopes as needed, and says whether to send the
// request again, with which headers. It may wait for a person, until ctx ends.
func (p *Provider) HandleResponse(ctx context.Context, method, url, sentAuthorization string, status int, header http.Header) (retry bool, headers http.Header, err error) {
	names, values, count, free := cHeaderArrays(header)
	defer free()
	cm, cu, cs := C.CString(method), C.CString(url), cstr(sentAuthorization)
	defer C.free(unsafe.Pointer(cm))
	defer C.free(unsafe.Pointer(cu))
	defer freeSecret(cs)
	o := p.run(ctx, func(pp *C.mcp_oauth_provider, h C.uintptr_t, op **C.mcp_oauth_operation) C.mcp_oauth_result {
		return C.mcpgo_handle_response_start(pp, cm, cu, cs, C.uint16_t(status), names, values, count, h, op)
	})
	return o.headers != nil, o.headers, o.err
}

// Authorize runs discovery and the whole flow now (a "log in" command),
// replacing any tokens held. Cancelling ctx stops it, in the library too.
func (p *Provider) Authorize(ctx context.Context) error {
	return p.run(ctx, func(pp *C.mcp_oauth_provider, h C.uintptr_t, op **C.mcp_oauth_operation) C.mcp_oauth_result {
		return C.mcpgo_authorize_start(pp, h, op)
	}).err
}

// IsDPoPNonceChallenge tells whether a response is a resource server's DPoP
// nonce challenge, the one response HandleResponse may see again after a retry.
func IsDPoPNonceChallenge(status int, header http.Header) bool {
	names, values, count, free := cHeaderArrays(header)
	defer free()
	return bool(C.mcpgo_is_dpop_nonce_challenge(C.uint16_t(status), names, values, count))
}

// cHeaderArrays copies headers into two C arrays of C strings (no Go
// pointer in them), one entry per value.
func cHeaderArrays(header http.Header) (names, values **C.char, count C.size_t, free func()) {
	n := 0
	for _, vs := range header {
		n += len(vs)
	}
	if n == 0 {
		return nil, nil, 0, func() {}
	}
	size := C.size_t(n) * C.size_t(unsafe.Sizeof((*C.char)(nil)))
	names = (**C.char)(C.malloc(size))
	values = (**C.char)(C.malloc(size))
	ns := unsafe.Slice(names, n)
	vs := unsafe.Slice(values, n)
	i := 0
	for k, list := range header {
		for _, v := range list {
			ns[i] = C.CString(k)
			vs[i] = C.CString(v)
			i++
		}
	}
	return names, values, C.size_t(n), func() {
		for j := 0; j < n; j++ {
			C.free(unsafe.Pointer(ns[j]))
			freeSecret(vs[j])
		}
		C.free(unsafe.Pointer(names))
		C.free(unsafe.Pointer(values))
	}
}
