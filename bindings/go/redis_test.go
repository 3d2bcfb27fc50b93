package mcpoauth_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	mcpoauth "github.com/mcp-oauth-client/mcp-oauth-client/bindings/go"
)

// startRedis starts a redis-server of the test's own on a free port, stopped
// at the end of the test. Without redis-server the test fails: the Redis
// store is never reported as tested when it was not.
func startRedis(t *testing.T) (url string, cli func(args ...string) string) {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed (scripts/setup.sh installs it): the Redis store is untested")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	cli = func(args ...string) string {
		out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", port}, args...)...).Output()
		if err != nil {
			t.Fatalf("redis-cli %v: %v", args, err)
		}
		return strings.TrimRight(string(out), "\n")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out, err := exec.Command("redis-cli", "-p", port, "ping").Output(); err == nil && strings.TrimSpace(string(out)) == "PONG" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "redis://127.0.0.1:" + port, cli
}

// Two providers (two members of a fleet) on one Redis: the second uses the
// first one's login, and Redis holds the tokens encrypted.
func TestRedisStoreSharedByAFleet(t *testing.T) {
	url, cli := startRedis(t)
	ctx := context.Background()
	key := mcpoauth.EncryptionKey{ID: "go-k1", Key: []byte("0123456789abcdef0123456789abcdef")}
	store := &mcpoauth.RedisStore{URL: url, KeyPrefix: "go-fleet", Keys: []mcpoauth.EncryptionKey{key}}
	newRedisProvider := func(person *testPerson) *mcpoauth.Provider {
		p, err := mcpoauth.New(mcpoauth.Options{
			ServerURL: peers.MCPURL, ClientMetadataJSON: clientMetadata, Redis: store,
			Redirect: person.Redirect, Callback: person.Callback,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	person := newTestPerson()
	listAndCall(t, ctx, newRedisProvider(person), "first member")
	if person.count() != 1 {
		t.Fatalf("first member: %d redirects", person.count())
	}
	after := stateOfAS(t)

	person2 := newTestPerson()
	listAndCall(t, ctx, newRedisProvider(person2), "second member")
	again := stateOfAS(t)
	if person2.count() != 0 || again.Authorizations != after.Authorizations || again.tokenRequests() != after.tokenRequests() {
		t.Fatalf("second member: %d redirects, authorizations %d -> %d, token requests %d -> %d",
			person2.count(), after.Authorizations, again.Authorizations, after.tokenRequests(), again.tokenRequests())
	}
	keys := strings.Fields(cli("--scan", "--pattern", "go-fleet:srv:*:tokens"))
	if len(keys) != 1 {
		t.Fatalf("token keys in Redis: %v", keys)
	}
	if v := cli("hget", keys[0], "d"); !strings.HasPrefix(v, "aes256gcm:go-k1:") || strings.Contains(v, "access_token") {
		t.Fatalf("the stored tokens are not encrypted with go-k1: %.40s...", v)
	}
}

func TestRedisStoreSettingsAreChecked(t *testing.T) {
	for name, store := range map[string]*mcpoauth.RedisStore{
		"no key":     {URL: "redis://127.0.0.1:1"},
		"short key":  {URL: "redis://127.0.0.1:1", Keys: []mcpoauth.EncryptionKey{{ID: "k", Key: []byte("short")}}},
		"empty URL":  {URL: "", AllowUnencryptedValues: true},
		"not redis":  {URL: "http://127.0.0.1:1", AllowUnencryptedValues: true},
		"bad prefix": {URL: "redis://127.0.0.1:1", KeyPrefix: "a{b", AllowUnencryptedValues: true},
	} {
		_, err := mcpoauth.New(mcpoauth.Options{ServerURL: peers.MCPURL, ClientMetadataJSON: clientMetadata, Redis: store})
		var oe *mcpoauth.Error
		if !errors.As(err, &oe) || oe.Code != mcpoauth.ResultInvalidConfiguration {
			t.Fatalf("%s: %v, want an invalid configuration", name, err)
		}
		if name == "no key" && !strings.Contains(oe.Message, "allow_unencrypted_values") {
			t.Fatalf("no key: %q does not name the opt-out", oe.Message)
		}
	}
	p, err := mcpoauth.New(mcpoauth.Options{ServerURL: peers.MCPURL, ClientMetadataJSON: clientMetadata, Redis: &mcpoauth.RedisStore{URL: "redis://127.0.0.1:1", AllowUnencryptedValues: true}})
	if err != nil {
		t.Fatalf("the explicit opt-out: %v", err)
	}
	p.Close()
}
