package mcpoauth_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The real peers (tests/peers/launch.py): the oidc-provider authorization
// server and the protected MCP server.
type peerInfo struct {
	Issuer     string `json:"issuer"`
	MCPURL     string `json:"mcp_url"`
	ControlURL string `json:"control_url"`
	MCPControl string `json:"mcp_control_url"`
}

var peers peerInfo

func TestMain(m *testing.M) {
	os.Exit(runWithPeers(m))
}

func runWithPeers(m *testing.M) int {
	root, _ := filepath.Abs("../..")
	python := os.Getenv("PYTHON")
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	cmd := exec.Command(python, filepath.Join(root, "tests", "peers", "launch.py"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		return 1
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		return 1
	}
	var log bytes.Buffer
	cmd.Stderr = &log // shown when a test fails
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "the peers did not start:", err)
		return 1
	}
	code := 1
	defer func() {
		stdin.Close() // EOF on its stdin stops the peers
		_ = cmd.Wait()
		if code != 0 {
			os.Stderr.Write(log.Bytes())
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || json.Unmarshal([]byte(line), &peers) != nil || peers.MCPURL == "" {
		fmt.Fprintln(os.Stderr, "the peers did not start:", err, line)
		return 1
	}
	code = m.Run()
	return code
}

// asState is the authorization server's control counters.
type asState struct {
	Authorizations int            `json:"authorizations"`
	TokenRequests  map[string]int `json:"token_requests"`
}

func (s asState) tokenRequests() int {
	n := 0
	for _, v := range s.TokenRequests {
		n += v
	}
	return n
}

func stateOfAS(t *testing.T) asState {
	t.Helper()
	resp, err := http.Get(peers.ControlURL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s asState
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// memoryStorage is a Storage a test can look into.
type memoryStorage struct {
	mu             sync.Mutex
	tokens, client []byte
}

func (s *memoryStorage) Tokens() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens, nil
}

func (s *memoryStorage) SetTokens(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = b
	return nil
}

func (s *memoryStorage) ClientInfo() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client, nil
}

func (s *memoryStorage) SetClientInfo(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client = b
	return nil
}

// testPerson plays the person: it follows the authorization server's
// redirects (the test server approves without a page) and stops at the
// redirect back to the client, which its callback step returns.
type testPerson struct {
	mu        sync.Mutex
	redirects int
	back      chan string
}

func newTestPerson() *testPerson { return &testPerson{back: make(chan string, 16)} }

func (p *testPerson) Redirect(ctx context.Context, authorizationURL string) error {
	p.mu.Lock()
	p.redirects++
	p.mu.Unlock()
	issuer, _ := url.Parse(peers.Issuer)
	jar, _ := cookiejar.New(nil)
	var back string
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != issuer.Host {
			back = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authorizationURL, nil)
	if err != nil {
		return err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if back == "" {
		return fmt.Errorf("the authorization server did not send the person back (status %d)", resp.StatusCode)
	}
	p.back <- back
	return nil
}

func (p *testPerson) Callback(ctx context.Context) (string, error) {
	select {
	case b := <-p.back:
		return b, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (p *testPerson) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.redirects
}

const clientMetadata = `{"client_name": "mcp-oauth-client Go tests", "redirect_uris": ["http://127.0.0.1:9/callback"], "grant_types": ["authorization_code", "refresh_token"]}`
