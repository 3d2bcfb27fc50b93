package mcpoauth_test

import (
	"context"
	"net/http"
	"testing"
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
