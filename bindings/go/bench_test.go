package mcpoauth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	mcpoauth "github.com/mcp-oauth-client/mcp-oauth-client/bindings/go"
)

// The header per request with a valid token held (the hot path), alone and
// from 16 goroutines: go test -run '^$' -bench . -benchtime 2s
func BenchmarkHeaders(b *testing.B) {
	p := authorizedProvider(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if h, err := p.Headers(ctx, http.MethodPost, peers.MCPURL); err != nil || h == nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHeaders16Goroutines(b *testing.B) {
	p := authorizedProvider(b)
	ctx := context.Background()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if h, err := p.Headers(ctx, http.MethodPost, peers.MCPURL); err != nil || h == nil {
				b.Error(err)
				return
			}
		}
	})
}

// storedProvider is a provider holding a valid ~1 KB token from storage (no
// network), and the Authorization value it must give.
func storedProvider(b *testing.B) (*mcpoauth.Provider, string, string) {
	const server = "https://mcp.example.com/mcp"
	token := "eyJ" + strings.Repeat("a", 990)
	storage := &memoryStorage{tokens: []byte(`{"access_token": "` + token +
		`", "token_type": "Bearer", "expires_in": 3600, "expires_at": 4102444800}`)}
	p, err := mcpoauth.New(mcpoauth.Options{
		ServerURL:          server,
		ClientMetadataJSON: `{"redirect_uris": ["http://127.0.0.1:9/cb"]}`,
		Storage:            storage,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	if h, err := p.Headers(context.Background(), http.MethodPost, server); err != nil || h.Get("Authorization") != "Bearer "+token {
		b.Fatal("no header from the stored token", err)
	}
	return p, server, "Bearer " + token
}

// The hot path as a host sets headers on its own requests (SetHeaders into
// the request's header map), from GOMAXPROCS goroutines:
// `go test -run '^$' -bench HeadersStored -cpu 1,2,8` gives the aggregate ns
// per call with 1, 2 and 8 threads (bench/run.sh).
func BenchmarkHeadersStored(b *testing.B) {
	p, server, want := storedProvider(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		h, calls := make(http.Header), 0
		for pb.Next() {
			if ok, err := p.SetHeaders(ctx, h, http.MethodPost, server); err != nil || !ok {
				b.Error(err)
				return
			}
			calls++
		}
		if calls > 0 && h.Get("Authorization") != want {
			b.Error("wrong Authorization value")
		}
	})
}

// The same through Headers, which returns a new http.Header per call.
func BenchmarkHeadersStoredMap(b *testing.B) {
	p, server, _ := storedProvider(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if h, err := p.Headers(ctx, http.MethodPost, server); err != nil || h == nil {
				b.Error(err)
				return
			}
		}
	})
}
