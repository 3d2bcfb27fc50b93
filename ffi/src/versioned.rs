//! Versioned structs (libgit2's pattern): a struct the host fills in and
//! passes to the library starts with `unsigned int version`, set by the
//! struct's `_INIT` macro to the `MCP_OAUTH_<STRUCT>_VERSION` of the header
//! the host was built with. A later header appends members and bumps the
//! version; the library reads only the members the host's version has, so a
//! binary built against an older header keeps working.

use std::ffi::c_uint;
use std::mem::MaybeUninit;

use crate::error::Failure;

/// Copy the host's struct at `p`, of the version it says, into a `T` whose
/// members of later versions are zero (NULL, `None`). `sizes[v - 1]` is the
/// size of version `v`, oldest first.
///
/// SAFETY: `p` is NULL or points to a readable struct, at least as large as
/// the version in its first member says; `T` is valid when zeroed (pointers,
/// optional function pointers, integers) and starts with a `c_uint`.
pub(crate) unsafe fn read<T: Copy>(p: *const T, name: &str, sizes: &[usize]) -> Result<T, Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: every version starts with the version member.
    let version = unsafe { p.cast::<c_uint>().read() } as usize;
    let Some(&size) = version.checked_sub(1).and_then(|i| sizes.get(i)) else {
        return Err(Failure::invalid_argument(format!(
            "{name}->version is {version}, and this library knows versions 1 to {}: initialize the struct with its \
             _INIT macro",
            sizes.len()
        )));
    };
    let mut out = MaybeUninit::<T>::zeroed();
    // SAFETY: `size` bytes are readable at `p` (its version says so) and fit
    // in `T` (a later version is never smaller).
    unsafe {
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), out.as_mut_ptr().cast::<u8>(), size.min(size_of::<T>()));
        Ok(out.assume_init())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    /// Version 1 of a struct, as a binary built against an older header has it.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct V1 {
        version: c_uint,
        userdata: *mut c_void,
        first: Option<extern "C" fn() -> i32>,
    }

    /// Version 2: one member appended.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct V2 {
        version: c_uint,
        userdata: *mut c_void,
        first: Option<extern "C" fn() -> i32>,
        appended: Option<extern "C" fn() -> i32>,
    }

    const SIZES: &[usize] = &[size_of::<V1>(), size_of::<V2>()];

    extern "C" fn one() -> i32 {
        1
    }

    #[test]
    fn an_old_version_is_read_with_the_appended_members_empty() {
        // Only the bytes of version 1 exist: a read past them would be
        // caught by Miri or ASan; here the allocation is exactly V1.
        let old = Box::new(V1 {
            version: 1,
            userdata: 0x10 as *mut c_void,
            first: Some(one),
        });
        let got =
            unsafe { read(std::ptr::from_ref(&*old).cast::<V2>(), "callbacks", SIZES) }.unwrap_or_else(|_| panic!());
        assert_eq!(got.version, 1);
        assert_eq!(got.userdata as usize, 0x10);
        assert_eq!(got.first.map(|f| f()), Some(1));
        assert!(got.appended.is_none());

        let new = V2 {
            version: 2,
            userdata: std::ptr::null_mut(),
            first: None,
            appended: Some(one),
        };
        let got = unsafe { read(&new, "callbacks", SIZES) }.unwrap_or_else(|_| panic!());
        assert_eq!(got.appended.map(|f| f()), Some(1));
    }

    #[test]
    fn an_unknown_version_is_refused() {
        for version in [0, 3, u32::MAX] {
            let v = V2 {
                version,
                userdata: std::ptr::null_mut(),
                first: None,
                appended: None,
            };
            let e = unsafe { read(&v, "callbacks", SIZES) }.err().map(|f| f.code());
            assert_eq!(
                e,
                Some(crate::error::mcp_oauth_result::InvalidArgument),
                "version {version}"
            );
        }
        assert!(unsafe { read(std::ptr::null::<V2>(), "callbacks", SIZES) }.is_err());
    }
}
