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
