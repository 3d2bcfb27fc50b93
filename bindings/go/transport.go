package mcpoauth

import (
	"bytes"
	"io"
	"net/http"
)

// Transport is an http.RoundTripper that authorizes every request with a
// Provider: it sets the provider's headers, hands a 401 or 403 to the
// provider (which refreshes, runs the flow or steps up) and sends the
// request once more when the provider says so, plus one more time for a
// DPoP nonce challenge. Request bodies are replayed through GetBody (read
// into memory first when the request has none). The request's context
// bounds everything, the person's step included.
type Transport struct {
	Provider *Provider
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(ctx)
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	method, target := req.Method, req.URL.String()
	headers, err := t.Provider.Headers(ctx, method, target)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.send(req, headers, false)
	if err != nil {
		return nil, err
	}
	for round := 0; round < 2; round++ {
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			return resp, nil
		}
		// After the first retry only a DPoP nonce challenge goes back to the provider.
		if round == 1 && !IsDPoPNonceChallenge(resp.StatusCode, resp.Header) {
			return resp, nil
		}
		retry, again, err := t.Provider.HandleResponse(ctx, method, target, headers.Get("Authorization"), resp.StatusCode, resp.Header)
		if err != nil || !retry {
			if err != nil {
				drain(resp)
				return nil, err
			}
			return resp, nil
		}
		drain(resp)
		headers = again
		if resp, err = t.send(req, headers, true); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// send sends a copy of req with headers set; a retry gets a fresh body.
func (t *Transport) send(req *http.Request, headers http.Header, retry bool) (*http.Response, error) {
	r := req.Clone(req.Context())
	if retry && req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = b
	} else if retry && req.Body != nil && req.Body != http.NoBody {
		return nil, errNoReplay
	}
	for k, vs := range headers {
		r.Header.Del(k)
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return t.base().RoundTrip(r)
}

type replayError struct{}

func (replayError) Error() string { return "mcpoauth: the request's body cannot be sent again" }

var errNoReplay error = replayError{}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
