// swift-tools-version:5.9
// The C ABI of mcp-oauth-client as a Swift module (CMcpOAuth). Build the
// library first: cargo build --release -p mcp-oauth-client-ffi (see README.md).
import PackageDescription

let package = Package(
    name: "McpOAuth",
    products: [
        .library(name: "CMcpOAuth", targets: ["CMcpOAuth"]),
    ],
    targets: [
        .systemLibrary(name: "CMcpOAuth", path: "Sources/CMcpOAuth"),
    ]
)
