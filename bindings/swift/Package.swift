// swift-tools-version:5.9
// mcp-oauth-client for Swift: the C ABI as a module (CMcpOAuth) and a thin
// async/await wrapper over it (McpOAuth). Build the library first:
// cargo build --release -p mcp-oauth-client-ffi (see README.md).
import PackageDescription

let package = Package(
    name: "McpOAuth",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "McpOAuth", targets: ["McpOAuth"]),
        .library(name: "CMcpOAuth", targets: ["CMcpOAuth"]),
    ],
    targets: [
        .systemLibrary(name: "CMcpOAuth", path: "Sources/CMcpOAuth"),
        .target(name: "McpOAuth", dependencies: ["CMcpOAuth"], path: "Sources/McpOAuth"),
        .testTarget(name: "McpOAuthTests", dependencies: ["McpOAuth"], path: "Tests/McpOAuthTests"),
    ]
)
