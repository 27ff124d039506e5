//! The process allocator: mimalloc, asked for plain blocks whenever the layout allows.
//!
//! Requests allocate many small, short-lived buffers on several threads; glibc's malloc spent
//! a fifth of the node's CPU on them under load (perf), mimalloc a fraction of that. The
//! `mimalloc` crate's allocator asks for every block through `mi_malloc_aligned`, whose fast
//! path only serves a size class while its current page has a free block: on a miss, sizes
//! that are not powers of two fall back to over-allocating (extra bytes and a slower path,
//! two or three times per write under load, callgrind). Every mimalloc block of 16 bytes or
//! more starts on a 16-byte boundary, so layouts aligned to at most that take the plain calls.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every mimalloc block at least this large (MI_MAX_ALIGN_SIZE).
const PLAIN_ALIGN: usize = 16;

/// v3's index of `mi_option_purge_delay` (libmimalloc-sys is pinned: the enum is unnamed there).
const OPTION_PURGE_DELAY: mi::mi_option_t = 15;
/// mimalloc v3's documented default for that option, checked before it is changed.
const DEFAULT_PURGE_DELAY_MS: std::ffi::c_long = 1000;
/// v3's index of `mi_option_allow_thp` (unnamed in libmimalloc-sys, like the one above).
const OPTION_ALLOW_THP: mi::mi_option_t = 43;

pub struct Allocator;

fn plain(layout: &Layout, size: usize) -> bool {
    layout.align() <= PLAIN_ALIGN && layout.align() <= size
}

/// A block for `layout` from the plain or the aligned one of a pair of mimalloc calls.
///
/// # Safety
/// Both calls must be mimalloc allocation functions.
#[inline(always)]
unsafe fn block(
    layout: Layout,
    plain_call: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned_call: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: mimalloc's allocation functions accept any size; a zero-size layout cannot
    // reach a GlobalAlloc.
    unsafe {
        if plain(&layout, layout.size()) {
            plain_call(layout.size()) as *mut u8
        } else {
            aligned_call(layout.size(), layout.align()) as *mut u8
        }
    }
}

unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: a pair of mimalloc allocation functions.
        unsafe { block(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: a pair of mimalloc allocation functions.
        unsafe { block(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from mimalloc.
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; mimalloc keeps the contents.
        unsafe {
            if plain(&layout, new_size) {
                mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

/// Keeps freed memory for `ms` before giving it back to the OS. A flushed memtable is freed
/// at once and refilled within seconds under load; returning its pages meant faulting (and
/// zeroing, as transparent huge pages) the same amount of memory again.
pub fn set_purge_delay(ms: i64) {
    // SAFETY: plain option calls into mimalloc.
    unsafe {
        if mi::mi_option_get(OPTION_PURGE_DELAY) == DEFAULT_PURGE_DELAY_MS {
            mi::mi_option_set(OPTION_PURGE_DELAY, ms as std::ffi::c_long);
        }
    }
}

/// Keeps the process on 4 KiB pages. mimalloc asks for transparent huge pages on its arenas,
/// so the first touch of every fresh 2 MiB of heap (a growing memtable, read buffers pinned by
/// it) zeroed the whole huge page inside one allocation on a request thread: at 20 k writes/s
/// the p99 latency was 4-5 ms of such stalls, 1-1.6 ms without them, at no cost in throughput
/// (bench, fixed-rate and saturated writes). Databases commonly advise turning THP off for
/// the same reason. Best effort: an older kernel that refuses leaves the pages as they were.
pub fn disable_transparent_huge_pages() {
    // SAFETY: option calls into mimalloc and a prctl that takes no pointers.
    unsafe {
        mi::mi_option_set(OPTION_ALLOW_THP, 0);
        #[cfg(target_os = "linux")]
        let _ = libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_honour_every_alignment() {
        let a = Allocator;
        let mut live = Vec::new();
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1usize, 3, 8, 12, 16, 24, 48, 100, 1000, 1500, 5000, 70_000] {
                let size = size.next_multiple_of(align);
                let l = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(l);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xAB, size);
                    let z = a.alloc_zeroed(l);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let grown = a.realloc(p, l, size * 3);
                    assert_eq!(
                        grown as usize % align,
                        0,
                        "realloc size {size} align {align}"
                    );
                    assert!(std::slice::from_raw_parts(grown, size)
                        .iter()
                        .all(|&b| b == 0xAB));
                    live.push((grown, Layout::from_size_align(size * 3, align).unwrap()));
                    live.push((z, l));
                }
            }
        }
        for (p, l) in live {
            unsafe { a.dealloc(p, l) };
        }
    }

    #[test]
    fn allow_thp_option_is_the_one_we_mean() {
        // mimalloc's default for allow_thp is 1 on Linux; the neighbouring options differ.
        let seen = unsafe { mi::mi_option_get(OPTION_ALLOW_THP) };
        assert_eq!(seen, 1, "option {OPTION_ALLOW_THP}");
        let next = unsafe { mi::mi_option_get(OPTION_ALLOW_THP + 1) };
        assert_eq!(next, 0, "minimal_purge_size follows allow_thp");
    }

    #[test]
    fn purge_delay_option_is_the_one_we_mean() {
        // The index is not named by libmimalloc-sys: if it ever points elsewhere, the default
        // seen here changes and this fails (set_purge_delay then leaves the option alone).
        let seen = unsafe { mi::mi_option_get(OPTION_PURGE_DELAY) };
        assert_eq!(seen, DEFAULT_PURGE_DELAY_MS, "option {OPTION_PURGE_DELAY}");
    }
}
