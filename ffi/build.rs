//! A versioned soname for libmcp_oauth.so on Linux: `libmcp_oauth.so.MAJOR.MINOR`
//! (before 1.0 every minor release may break the ABI). Programs linked against
//! it look for that name at run time, so it is also made available next to the
//! library cargo builds (a symbolic link), for programs linked in the tree.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let soname = format!("libmcp_oauth.so.{major}.{minor}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    // OUT_DIR is <profile dir>/build/<package>-<hash>/out.
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        return;
    };
    let link = profile_dir.join(&soname);
    if std::fs::symlink_metadata(&link).is_err() {
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink("libmcp_oauth.so", &link);
    }
}
