// A thin Swift layer over the C ABI of mcp-oauth-client (module CMcpOAuth).
// Every OAuth rule lives in the Rust core; this file only carries values:
// async/await over the `_start` functions, Task cancellation to
// `mcp_oauth_operation_cancel`, and the library's errors as `McpOAuthError`.

import CMcpOAuth
import Foundation

// MARK: - Errors

/// An error from the library: the case is the result code, the detail is
/// everything the library says about it. No secret is ever in it.
public enum McpOAuthError: Error, CustomStringConvertible, Sendable {
    case nullParameter(Detail)
    case invalidArgument(Detail)
    case invalidConfiguration(Detail)
    case flow(Detail)
    case registration(Detail)
    case token(Detail)
    case network(Detail)
    case storage(Detail)
    case handler(Detail)
    case wouldDeadlock(Detail)
    case panic(Detail)
    case server(Detail)
    case cancelled(Detail)
    case forked(Detail)
    case busy(Detail)
    /// A code this wrapper does not know (a newer library).
    case other(Detail)

    /// What the library reports with a failure.
    public struct Detail: Sendable {
        /// The C result code (`MCP_OAUTH_RESULT_*`).
        public let code: UInt32
        /// The error's kind (`"network"`, `"oauth"`, `"cancelled"`, ...).
        public let kind: String
        /// The message, and the whole display text (message and context).
        public let message: String
        public let display: String
        /// The step of the flow that failed (`"token"`, `"registration"`, ...), if any.
        public let step: String?
        /// The URL involved, if any (never with a query that could hold a secret).
        public let url: String?
        /// The HTTP status of the server's answer, if any.
        public let httpStatus: Int?
        /// The server's OAuth `error`, `error_description` and `error_uri`, if any.
        public let oauthError: String?
        public let oauthErrorDescription: String?
        public let oauthErrorURI: String?
        /// The server's `Retry-After`, if any.
        public let retryAfter: TimeInterval?
    }

    public var detail: Detail {
        switch self {
        case let .nullParameter(d), let .invalidArgument(d), let .invalidConfiguration(d), let .flow(d),
            let .registration(d), let .token(d), let .network(d), let .storage(d), let .handler(d),
            let .wouldDeadlock(d), let .panic(d), let .server(d), let .cancelled(d), let .forked(d),
            let .busy(d), let .other(d):
            return d
        }
    }

    public var description: String { detail.display }

    static func from(code: UInt32, detail d: Detail) -> McpOAuthError {
        switch code {
        case 1: return .nullParameter(d)
        case 3: return .invalidArgument(d)
        case 4: return .invalidConfiguration(d)
        case 5: return .flow(d)
        case 6: return .registration(d)
        case 7: return .token(d)
        case 8: return .network(d)
        case 9: return .storage(d)
        case 10: return .handler(d)
        case 11: return .wouldDeadlock(d)
        case 12: return .panic(d)
        case 13: return .server(d)
        case 14: return .cancelled(d)
        case 15: return .forked(d)
        case 16: return .busy(d)
        default: return .other(d)
        }
    }

    /// Reads a borrowed `mcp_oauth_error` (NULL: only the code is known).
    static func from(code: UInt32, error e: OpaquePointer?) -> McpOAuthError {
        func str(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }
        guard let e else {
            let name = str(mcp_oauth_result_name(mcp_oauth_result(code))) ?? "error \(code)"
            return from(
                code: code,
                detail: Detail(
                    code: code, kind: name, message: name, display: name, step: nil, url: nil,
                    httpStatus: nil, oauthError: nil, oauthErrorDescription: nil, oauthErrorURI: nil,
                    retryAfter: nil))
        }
        let status = Int(mcp_oauth_error_http_status(e))
        var retryMs: UInt64 = 0
        let hasRetry = mcp_oauth_error_retry_after_ms(e, &retryMs)
        let message = str(mcp_oauth_error_message(e)) ?? ""
        return from(
            code: code,
            detail: Detail(
                code: code,
                kind: str(mcp_oauth_error_kind(e)) ?? "",
                message: message,
                display: str(mcp_oauth_error_display(e)) ?? message,
                step: str(mcp_oauth_error_step(e)),
                url: str(mcp_oauth_error_url(e)),
                httpStatus: status == 0 ? nil : status,
                oauthError: str(mcp_oauth_error_oauth_error(e)),
                oauthErrorDescription: str(mcp_oauth_error_oauth_error_description(e)),
                oauthErrorURI: str(mcp_oauth_error_oauth_error_uri(e)),
                retryAfter: hasRetry ? TimeInterval(retryMs) / 1000 : nil))
    }
}

/// Throws for a failed setter or build; frees the owned error.
private func check(_ rc: mcp_oauth_result, _ err: OpaquePointer? = nil) throws {
    let code = mcp_oauth_swift_code(rc)
    defer { if let err { mcp_oauth_error_free(err) } }
    if code != 0 { throw McpOAuthError.from(code: code, error: err) }
}

private func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let s else { return try body(nil) }
    return try s.withCString { try body($0) }
}

// MARK: - Provider

/// An HTTP header the library asks to set.
public struct Header: Sendable, Equatable {
    public let name: String
    public let value: String
}

/// Builds a provider; mirrors the C builder's settings.
public struct ProviderOptions: Sendable {
    /// The MCP server's URL (required).
    public var serverURL: String
    /// Client metadata for dynamic registration (RFC 7591), as JSON.
    public var clientMetadataJSON: String?
    /// A Client ID Metadata Document URL, used where the server supports it.
    public var clientMetadataURL: String?
    /// A pre-registered client (secret, method and issuer optional).
    public var clientID: String?
    public var clientSecret: String?
    public var authMethod: String?
    public var issuer: String?
    /// The scopes to ask for (space-separated); nil lets the library choose.
    public var scope: String?
    /// Where tokens are kept.
    public enum Storage: Sendable {
        case memory
        /// The library's file store, shared safely between processes (nil: its default directory).
        case file(directory: String?)
    }
    public var storage: Storage = .file(directory: nil)
    /// DPoP-bound tokens (RFC 9449) with a key the library generates.
    public var dpop = false
    /// Bounds each OAuth request; nil: the library's default.
    public var timeout: TimeInterval?
    /// The person's step: the library's loopback receiver and the system
    /// browser, listening at this redirect URI (nil: 127.0.0.1, a free port).
    public var loopbackRedirectURI: String?

    public init(serverURL: String) { self.serverURL = serverURL }
}

/// Gives the headers for MCP requests and runs the OAuth flows. Safe to use
/// from any task or thread; the library frees it when the last use ends.
public final class Provider: @unchecked Sendable {
    private let raw: OpaquePointer

    public init(_ o: ProviderOptions) throws {
        guard let b = mcp_oauth_config_builder_new() else {
            throw McpOAuthError.from(code: 12, error: nil)
        }
        var built = false
        defer { if !built { mcp_oauth_config_builder_free(b) } }
        try check(o.serverURL.withCString { mcp_oauth_config_builder_set_server_url(b, $0) })
        if let m = o.clientMetadataJSON {
            try check(m.withCString { mcp_oauth_config_builder_set_client_metadata_json(b, $0) })
        }
        if let u = o.clientMetadataURL {
            try check(u.withCString { mcp_oauth_config_builder_set_client_metadata_url(b, $0) })
        }
        if let id = o.clientID {
            try check(
                withOptionalCString(id) { idp in
                    withOptionalCString(o.clientSecret) { sec in
                        withOptionalCString(o.authMethod) { am in
                            withOptionalCString(o.issuer) { iss in
                                mcp_oauth_config_builder_set_static_client(b, idp, sec, am, iss)
                            }
                        }
                    }
                })
        }
        if let s = o.scope {
            try check(s.withCString { mcp_oauth_config_builder_set_scope(b, $0) })
        }
        switch o.storage {
        case .memory:
            try check(mcp_oauth_config_builder_set_storage_memory(b))
        case let .file(directory):
            try check(withOptionalCString(directory) { mcp_oauth_config_builder_set_storage_file(b, $0) })
        }
        if o.dpop {
            try check(mcp_oauth_config_builder_set_dpop(b, true))
        }
        if let t = o.timeout {
            var err: OpaquePointer?
            let rc = mcp_oauth_config_builder_set_timeout_ms(b, UInt64(max(t, 0) * 1000), &err)
            try check(rc, err)
        }
        try check(withOptionalCString(o.loopbackRedirectURI) { mcp_oauth_config_builder_set_loopback_handler(b, $0, 0) })
        var p: OpaquePointer?
        var err: OpaquePointer?
        built = true  // build consumes the builder whatever happens
        try check(mcp_oauth_config_builder_build(b, &p, &err), err)
        guard let p else { throw McpOAuthError.from(code: 12, error: nil) }
        raw = p
    }

    deinit {
        // Operations still running complete with `.cancelled`.
        mcp_oauth_provider_free(raw)
    }

    /// The headers for a request to `url`, refreshing or logging in first when needed.
    public func headers(method: String, url: String) async throws -> [Header] {
        try await PendingCall.run(kind: .headers) { ud, op in
            method.withCString { m in
                url.withCString { u in
                    mcp_oauth_provider_get_headers_start(self.raw, m, u, headersCompletion, ud, op)
                }
            }
        }.headers ?? []
    }

    /// Hands the library a response (a 401 or 403 above all): it refreshes,
    /// runs the flow or steps up scopes. Returns the headers to send the
    /// request again with, or nil when it should not be sent again.
    public func handleResponse(
        method: String, url: String, sentAuthorization: String?, status: Int, headers: [Header]
    ) async throws -> [Header]? {
        let names = headers.map { strdup($0.name) }
        let values = headers.map { strdup($0.value) }
        defer {
            names.forEach { free($0) }
            values.forEach { free($0) }
        }
        let cNames: [UnsafePointer<CChar>?] = names.map { $0.map { UnsafePointer($0) } }
        let cValues: [UnsafePointer<CChar>?] = values.map { $0.map { UnsafePointer($0) } }
        return try await PendingCall.run(kind: .headers) { ud, op in
            method.withCString { m in
                url.withCString { u in
                    withOptionalCString(sentAuthorization) { a in
                        cNames.withUnsafeBufferPointer { np in
                            cValues.withUnsafeBufferPointer { vp in
                                mcp_oauth_provider_handle_response_start(
                                    self.raw, m, u, a, UInt16(clamping: status), np.baseAddress, vp.baseAddress,
                                    headers.count, headersCompletion, ud, op)
                            }
                        }
                    }
                }
            }
        }.headers
    }

    /// Logs in (or refreshes) now, without a request.
    public func authorize() async throws {
        _ = try await PendingCall.run(kind: .plain) { ud, op in
            mcp_oauth_provider_authorize_start(self.raw, plainCompletion, ud, op)
        }
    }
}

// MARK: - Operations: async/await over the `_start` functions

/// One asynchronous call: the continuation, the operation handle, and
/// whether the task was cancelled before the handle existed.
private final class PendingCall: @unchecked Sendable {
    enum Kind { case headers, plain }
    struct Outcome { var headers: [Header]? }

    private let lock = NSLock()
    private var continuation: CheckedContinuation<Outcome, Error>?
    private var handle: OpaquePointer?
    private var cancelRequested = false
    private var finished = false

    deinit {
        if let handle { mcp_oauth_operation_free(handle) }
    }

    /// Starts the operation with `start(userdata, &handle)` and waits for
    /// its completion; a cancelled Task cancels it in the library.
    static func run(
        kind: Kind,
        _ start: (UnsafeMutableRawPointer, UnsafeMutablePointer<OpaquePointer?>) -> mcp_oauth_result
    ) async throws -> Outcome {
        let operation = PendingCall()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Outcome, Error>) in
                operation.lock.lock()
                operation.continuation = c
                operation.lock.unlock()
                // The completion's reference: released when it runs.
                let ud = Unmanaged.passRetained(operation).toOpaque()
                var handle: OpaquePointer?
                let code = mcp_oauth_swift_code(start(ud, &handle))
                if code != 0 {
                    // Not started: no completion will come.
                    Unmanaged<PendingCall>.fromOpaque(ud).release()
                    operation.finish(.failure(McpOAuthError.from(code: code, error: nil)))
                    return
                }
                operation.lock.lock()
                operation.handle = handle
                let cancelNow = operation.cancelRequested && !operation.finished
                operation.lock.unlock()
                if cancelNow, let handle { _ = mcp_oauth_operation_cancel(handle) }
            }
        } onCancel: {
            operation.cancel()
        }
    }

    private func cancel() {
        lock.lock()
        cancelRequested = true
        let h = finished ? nil : handle
        lock.unlock()
        if let h { _ = mcp_oauth_operation_cancel(h) }
    }

    fileprivate func finish(_ r: Result<Outcome, Error>) {
        lock.lock()
        finished = true
        let c = continuation
        continuation = nil
        lock.unlock()
        c?.resume(with: r)
    }

    /// Called by the completions, on a library thread.
    fileprivate static func complete(
        _ userdata: UnsafeMutableRawPointer?, _ result: mcp_oauth_result, headers: OpaquePointer?,
        error: OpaquePointer?
    ) {
        guard let userdata else { return }
        let operation = Unmanaged<PendingCall>.fromOpaque(userdata).takeRetainedValue()
        let code = mcp_oauth_swift_code(result)
        if code != 0 {
            operation.finish(.failure(McpOAuthError.from(code: code, error: error)))
            return
        }
        var out: [Header]?
        if let h = headers {
            out = (0..<mcp_oauth_headers_count(h)).compactMap { i in
                guard let n = mcp_oauth_headers_name(h, i), let v = mcp_oauth_headers_value(h, i) else { return nil }
                return Header(name: String(cString: n), value: String(cString: v))
            }
        }
        operation.finish(.success(Outcome(headers: out)))
    }
}

private let headersCompletion: mcp_oauth_headers_completion = { userdata, result, headers, error in
    PendingCall.complete(userdata, result, headers: headers, error: error)
}

private let plainCompletion: mcp_oauth_completion = { userdata, result, _, error in
    PendingCall.complete(userdata, result, headers: nil, error: error)
}
