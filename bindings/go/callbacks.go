package mcpoauth

/*
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// Storage keeps a provider's tokens and client information, as JSON
// documents the library writes and reads back unchanged. A nil document
// with a nil error means none is stored. The methods run on the library's
// threads, possibly concurrently, and may block (a disk, a database).
type Storage interface {
	Tokens() ([]byte, error)
	SetTokens(json []byte) error
	ClientInfo() ([]byte, error)
	SetClientInfo(json []byte) error
}

// goRelease ends a handle the library held: it calls release exactly once.
//
//export goRelease
func goRelease(h C.uintptr_t) { cgo.Handle(h).Delete() }

// noPanic turns a panic of the host's Go code into a failure code: a
// panic must not unwind into the library's C frames.
func noPanic(rc *C.int) {
	if recover() != nil {
		*rc = 3
	}
}

//export goLog
func goLog(h C.uintptr_t, level C.uint32_t, target, message *C.char) {
	defer func() { _ = recover() }() // a panic must not cross into the library
	log := cgo.Handle(h).Value().(func(LogLevel, string, string))
	log(LogLevel(level), C.GoString(target), C.GoString(message))
}

//export goStorageGet
func goStorageGet(h C.uintptr_t, which C.int, answer *C.struct_mcp_oauth_answer) (rc C.int) {
	defer noPanic(&rc)
	s := cgo.Handle(h).Value().(Storage)
	var doc []byte
	var err error
	if which == 0 {
		doc, err = s.Tokens()
	} else {
		doc, err = s.ClientInfo()
	}
	if err != nil {
		return 1
	}
	if len(doc) == 0 {
		return 0
	}
	cs := C.CString(string(doc))
	set := C.mcp_oauth_answer_set(answer, cs)
	freeSecret(cs)
	if set != 0 {
		return 2
	}
	return 0
}

//export goStorageSet
func goStorageSet(h C.uintptr_t, which C.int, json *C.char) (rc C.int) {
	defer noPanic(&rc)
	s := cgo.Handle(h).Value().(Storage)
	doc := []byte(C.GoString(json))
	var err error
	if which == 0 {
		err = s.SetTokens(doc)
	} else {
		err = s.SetClientInfo(doc)
	}
	if err != nil {
		return 1
	}
	return 0
}

// goHeadersDone is every operation's completion: it hands the outcome to
// the goroutine waiting in Provider.run and ends the handle.
//
//export goHeadersDone
func goHeadersDone(h C.uintptr_t, rc C.mcp_oauth_result, hs *C.struct_mcp_oauth_headers, e *C.struct_mcp_oauth_error) {
	hd := cgo.Handle(h)
	ch := hd.Value().(chan outcome)
	hd.Delete()
	var o outcome
	if rc != 0 {
		o.err = copyError(rc, e)
	} else {
		o.headers = goHeaders(hs)
	}
	ch <- o
}

// person runs the person's two steps for each authorization the library begins.
type person struct {
	redirect func(ctx context.Context, authorizationURL string) error
	callback func(ctx context.Context) (string, error)
	mu       sync.Mutex
	running  map[uintptr]context.CancelFunc
}

//export goAuthorizationBegin
func goAuthorizationBegin(h C.uintptr_t, a *C.struct_mcp_oauth_authorization) C.int {
	p := cgo.Handle(h).Value().(*person)
	authURL := C.GoString(C.mcp_oauth_authorization_url(a))
	ctx, cancel := context.WithCancel(context.Background())
	key := uintptr(unsafe.Pointer(a))
	p.mu.Lock()
	if p.running == nil {
		p.running = map[uintptr]context.CancelFunc{}
	}
	p.running[key] = cancel
	p.mu.Unlock()
	go func() {
		defer cancel()
		redirect, err := func() (_ string, err error) {
			defer func() {
				if recover() != nil {
					err = errors.New("the host's authorization step panicked")
				}
			}()
			if err := p.redirect(ctx, authURL); err != nil {
				return "", err
			}
			return p.callback(ctx)
		}()
		p.mu.Lock()
		delete(p.running, key)
		p.mu.Unlock()
		if err != nil {
			// The message is the host's own; it must not hold a secret.
			m := C.CString(err.Error())
			C.mcp_oauth_authorization_fail(a, 1, m)
			C.free(unsafe.Pointer(m))
			return
		}
		r := C.CString(redirect)
		C.mcp_oauth_authorization_complete(a, r)
		freeSecret(r)
	}()
	return 0
}

//export goAuthorizationCancel
func goAuthorizationCancel(h C.uintptr_t, a *C.struct_mcp_oauth_authorization) {
	p := cgo.Handle(h).Value().(*person)
	p.mu.Lock()
	cancel := p.running[uintptr(unsafe.Pointer(a))]
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// transportBridge sends the library's OAuth requests with the host's *http.Client.
type transportBridge struct {
	client  *http.Client
	mu      sync.Mutex
	running map[uintptr]context.CancelFunc
}

func newTransportBridge(c *http.Client) *transportBridge {
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &transportBridge{client: &nc, running: map[uintptr]context.CancelFunc{}}
}

//export goTransportSend
func goTransportSend(h C.uintptr_t, r *C.struct_mcp_oauth_http_request) C.int {
	t := cgo.Handle(h).Value().(*transportBridge)
	method := C.GoString(C.mcp_oauth_http_request_method(r))
	target := C.GoString(C.mcp_oauth_http_request_url(r))
	var body []byte
	var blen C.size_t
	if b := C.mcp_oauth_http_request_body(r, &blen); b != nil && blen > 0 {
		body = C.GoBytes(unsafe.Pointer(b), C.int(blen))
	}
	header := http.Header{}
	for i, n := C.size_t(0), C.mcp_oauth_http_request_header_count(r); i < n; i++ {
		header.Add(C.GoString(C.mcp_oauth_http_request_header_name(r, i)), C.GoString(C.mcp_oauth_http_request_header_value(r, i)))
	}
	timeout := time.Duration(C.mcp_oauth_http_request_timeout_ms(r)) * time.Millisecond
	limit := int64(C.mcp_oauth_http_request_max_response_bytes(r))
	ctx, cancel := context.WithCancel(context.Background())
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		cancel()
		return 1
	}
	if body == nil {
		req.Body = http.NoBody
	}
	req.Header = header
	key := uintptr(unsafe.Pointer(r))
	t.mu.Lock()
	t.running[key] = cancel
	t.mu.Unlock()
	go func() {
		defer cancel()
		status, rh, rb, failure, msg := t.exchange(req, limit)
		t.mu.Lock()
		delete(t.running, key)
		t.mu.Unlock()
		if failure != NetworkNone {
			m := C.CString(msg)
			C.mcp_oauth_http_request_fail(r, C.uint32_t(failure), m)
			C.free(unsafe.Pointer(m))
			return
		}
		names, values, count, free := cHeaderArrays(rh)
		var bp unsafe.Pointer
		if len(rb) > 0 {
			bp = C.CBytes(rb)
		}
		C.mcpgo_respond(r, C.uint16_t(status), names, values, count, bp, C.size_t(len(rb)))
		free()
		if bp != nil {
			C.free(bp)
		}
	}()
	return 0
}

func (t *transportBridge) exchange(req *http.Request, limit int64) (int, http.Header, []byte, NetworkFailure, string) {
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, nil, nil, classify(req.Context(), err), describe(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if limit > 0 {
		r = io.LimitReader(resp.Body, limit+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, nil, nil, classify(req.Context(), err), describe(err)
	}
	if limit > 0 && int64(len(b)) > limit {
		return 0, nil, nil, NetworkTooLarge, "response body over the library's limit"
	}
	return resp.StatusCode, resp.Header, b, NetworkNone, ""
}

func classify(ctx context.Context, err error) NetworkFailure {
	var op *net.OpError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return NetworkTimeout
	case errors.As(err, &op) && op.Op == "dial":
		return NetworkConnect
	}
	return NetworkOther
}

// describe gives the cause without the request's URL (the library has it).
func describe(err error) string {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err.Error()
	}
	return err.Error()
}

//export goTransportCancel
func goTransportCancel(h C.uintptr_t, r *C.struct_mcp_oauth_http_request) {
	t := cgo.Handle(h).Value().(*transportBridge)
	t.mu.Lock()
	cancel := t.running[uintptr(unsafe.Pointer(r))]
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
