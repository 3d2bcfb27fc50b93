import XCTest

@testable import McpOAuth

final class McpOAuthTests: XCTestCase {
    /// A setting the library refuses comes back as a Swift error with the
    /// library's message, not a crash.
    func testABadServerURLIsAConfigurationError() {
        var o = ProviderOptions(serverURL: "not a url")
        o.storage = .memory
        XCTAssertThrowsError(try Provider(o)) { error in
            guard let e = error as? McpOAuthError else {
                return XCTFail("not an McpOAuthError: \(error)")
            }
            switch e {
            case .invalidArgument, .invalidConfiguration: break
            default: XCTFail("unexpected case: \(e)")
            }
            XCTAssertFalse(e.detail.message.isEmpty)
        }
    }

    /// Cancelling the Task cancels the operation in the library: the call
    /// ends at once with `.cancelled`, long before the network would give up.
    func testTaskCancellationCancelsTheOperation() async throws {
        // A listener that accepts and never answers: discovery waits on it.
        let listener = try SilentListener()
        defer { listener.close() }
        var o = ProviderOptions(serverURL: "http://127.0.0.1:\(listener.port)/mcp")
        o.storage = .memory
        o.timeout = 120
        let provider = try Provider(o)
        let task = Task { try await provider.authorize() }
        try await Task.sleep(nanoseconds: 300_000_000)
        let started = Date()
        task.cancel()
        do {
            try await task.value
            XCTFail("authorize succeeded against a server that never answers")
        } catch let e as McpOAuthError {
            guard case .cancelled = e else { return XCTFail("unexpected error: \(e)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
    }

    /// With nothing stored and a server that refuses connections, asking for
    /// headers is a network error that says what failed.
    func testNoServerIsANetworkError() async throws {
        let port = try SilentListener.freePort()
        var o = ProviderOptions(serverURL: "http://127.0.0.1:\(port)/mcp")
        o.storage = .memory
        let provider = try Provider(o)
        do {
            _ = try await provider.authorize()
            XCTFail("authorize succeeded with no server")
        } catch let e as McpOAuthError {
            guard case .network = e else { return XCTFail("unexpected error: \(e)") }
            XCTAssertFalse(e.description.isEmpty)
        }
    }
}

private func closeSocket(_ fd: Int32) { _ = close(fd) }

/// A TCP listener on 127.0.0.1 that accepts connections (the kernel's
/// backlog does) and never answers.
final class SilentListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        #if os(Linux)
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = UInt16(bigEndian: addr.sin_port)
    }

    func close() { closeSocket(fd) }

    /// A port nothing listens on (bound, then closed).
    static func freePort() throws -> UInt16 {
        let l = try SilentListener()
        l.close()
        return l.port
    }
}
