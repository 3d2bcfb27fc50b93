package mcpoauth

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"time"
)

// Result is the library's result code (mcp_oauth_result).
type Result int

// The result codes an Error may carry.
const (
	ResultNullParameter        Result = C.MCP_OAUTH_RESULT_NULL_PARAMETER
	ResultInvalidArgument      Result = C.MCP_OAUTH_RESULT_INVALID_ARGUMENT
	ResultInvalidConfiguration Result = C.MCP_OAUTH_RESULT_INVALID_CONFIGURATION
	ResultFlow                 Result = C.MCP_OAUTH_RESULT_FLOW
	ResultRegistration         Result = C.MCP_OAUTH_RESULT_REGISTRATION
	ResultToken                Result = C.MCP_OAUTH_RESULT_TOKEN
	ResultNetwork              Result = C.MCP_OAUTH_RESULT_NETWORK
	ResultStorage              Result = C.MCP_OAUTH_RESULT_STORAGE
	ResultHandler              Result = C.MCP_OAUTH_RESULT_HANDLER
	ResultWouldDeadlock        Result = C.MCP_OAUTH_RESULT_WOULD_DEADLOCK
	ResultPanic                Result = C.MCP_OAUTH_RESULT_PANIC
	ResultServer               Result = C.MCP_OAUTH_RESULT_SERVER
	ResultCancelled            Result = C.MCP_OAUTH_RESULT_CANCELLED
	ResultForked               Result = C.MCP_OAUTH_RESULT_FORKED
	ResultBusy                 Result = C.MCP_OAUTH_RESULT_BUSY
)

// String is the code's name, e.g. "token".
func (r Result) String() string { return C.GoString(C.mcp_oauth_result_name(C.uint32_t(r))) }

// NetworkFailure says how a request failed to get a response.
type NetworkFailure int

// The network failures.
const (
	NetworkNone     NetworkFailure = C.MCP_OAUTH_NETWORK_FAILURE_NONE
	NetworkOther    NetworkFailure = C.MCP_OAUTH_NETWORK_FAILURE_OTHER
	NetworkTimeout  NetworkFailure = C.MCP_OAUTH_NETWORK_FAILURE_TIMEOUT
	NetworkConnect  NetworkFailure = C.MCP_OAUTH_NETWORK_FAILURE_CONNECT
	NetworkTooLarge NetworkFailure = C.MCP_OAUTH_NETWORK_FAILURE_TOO_LARGE
	NetworkTLS      NetworkFailure = C.MCP_OAUTH_NETWORK_FAILURE_TLS
)

// Error is a failure reported by the library, with every field it gives.
// Use errors.As to get it; its Kind (e.g. "token", "server", "network")
// names the OAuth kind, and errors.Is(err, &Error{Code: ResultToken})
// matches by code. It never holds a secret.
type Error struct {
	Code    Result
	Kind    string
	Message string
	display string
	// Step is the step of the flow that failed (e.g. "token_exchange"), if any.
	Step string
	// URL is the URL of the request that failed, if any.
	URL string
	// HTTPStatus is the status of the response that failed, or 0.
	HTTPStatus int
	// OAuthError, OAuthErrorDescription and OAuthErrorURI are the
	// server's OAuth error response (RFC 6749 §5.2), if any.
	OAuthError, OAuthErrorDescription, OAuthErrorURI string
	// RetryAfter is the server's Retry-After, when HasRetryAfter.
	RetryAfter    time.Duration
	HasRetryAfter bool
	// NetworkFailure says how a request got no response.
	NetworkFailure NetworkFailure
	// CallbackCode is the code a host callback returned, when HasCallbackCode.
	CallbackCode    int64
	HasCallbackCode bool
}

func (e *Error) Error() string {
	if e.display != "" {
		return "mcpoauth: " + e.display
	}
	if e.Message != "" {
		return fmt.Sprintf("mcpoauth: %s: %s", e.Kind, e.Message)
	}
	return "mcpoauth: " + e.Code.String()
}

// Is matches another *Error by Code, so errors.Is(err, &Error{Code: ResultServer}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// copyError copies a borrowed library error into a Go value.
func copyError(rc C.mcp_oauth_result, e *C.mcp_oauth_error) *Error {
	out := &Error{Code: Result(rc)}
	if e == nil {
		out.Kind = out.Code.String()
		return out
	}
	out.Code = Result(C.mcp_oauth_error_code(e))
	out.Kind = goString(C.mcp_oauth_error_kind(e))
	out.Message = goString(C.mcp_oauth_error_message(e))
	out.display = goString(C.mcp_oauth_error_display(e))
	out.Step = goString(C.mcp_oauth_error_step(e))
	out.URL = goString(C.mcp_oauth_error_url(e))
	out.HTTPStatus = int(C.mcp_oauth_error_http_status(e))
	out.OAuthError = goString(C.mcp_oauth_error_oauth_error(e))
	out.OAuthErrorDescription = goString(C.mcp_oauth_error_oauth_error_description(e))
	out.OAuthErrorURI = goString(C.mcp_oauth_error_oauth_error_uri(e))
	var ms C.uint64_t
	if C.mcp_oauth_error_retry_after_ms(e, &ms) {
		out.HasRetryAfter = true
		out.RetryAfter = time.Duration(ms) * time.Millisecond
	}
	out.NetworkFailure = NetworkFailure(C.mcp_oauth_error_network_failure(e))
	var code C.int64_t
	if C.mcp_oauth_error_callback_code(e, &code) {
		out.HasCallbackCode = true
		out.CallbackCode = int64(code)
	}
	return out
}

// takeError copies an owned library error and frees it.
func takeError(rc C.mcp_oauth_result, e *C.mcp_oauth_error) error {
	out := copyError(rc, e)
	if e != nil {
		C.mcp_oauth_error_free(e)
	}
	return out
}
