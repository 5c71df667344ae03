//! The process's memory: its allocator, transparent huge pages, and handing freed memory back.
//!
//! mimalloc rather than glibc's malloc: glibc raises its mmap threshold to the largest block
//! freed, so decoded frames, tensors and tract's activations come from its per-thread heaps,
//! which keep what is freed; a camera pipeline's resident memory grew to three times its working
//! set. mimalloc returns pages it has held free for a while (its `purge_delay`, 1 s).
//!
//! Transparent huge pages are off for the process unless the operator asks for them: mimalloc
//! asks for huge pages on its arenas, and a 2 MiB page a pipeline only partly uses is resident in
//! full. `MIMALLOC_ALLOW_THP` in the environment (mimalloc's own option) leaves the choice to
//! mimalloc: `MIMALLOC_ALLOW_THP=1` keeps them. Figures: BENCHMARKS.md, "Memory".

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets `PR_SET_THP_DISABLE` for this process (inherited across fork and exec), unless
/// `MIMALLOC_ALLOW_THP` is set. Called first thing, before the large allocations.
pub fn disable_huge_pages_unless_asked() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE sets a flag on this process's memory map; it takes no pointers.
    // Kernels before 3.15 do not know it and return EINVAL: huge pages then stay as the system
    // has them, which costs memory, not correctness, so the result is not checked.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// After a large release (the daemon started, its models loaded and optimised; an outbox
/// generation closed or deleted): gives back now what mimalloc holds free, instead of at its
/// next allocation after the purge delay (an idle daemon may make none), and trims glibc's heap,
/// where onnxruntime and other C libraries allocate.
pub fn return_freed() {
    // SAFETY: mi_collect only releases free memory of mimalloc's heaps; it has no preconditions.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn huge_pages_are_off_for_the_process() {
        super::disable_huge_pages_unless_asked();
        // SAFETY: PR_GET_THP_DISABLE reads the flag; it takes no pointers.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }

    #[test]
    fn freed_memory_is_returned() {
        // mimalloc is this test binary's allocator too. Only the block's own pages are looked
        // at (mincore), so other tests allocating meanwhile do not matter.
        const LEN: usize = 64 << 20;
        // SAFETY: sysconf has no preconditions. 4, 16 or 64 KiB, depending on the kernel.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let resident = |addr: usize| {
            let mut vec = vec![0u8; LEN / page];
            // SAFETY: addr is page-aligned (see below), vec has one byte per page of the range.
            let rc = unsafe { libc::mincore(addr as *mut libc::c_void, LEN, vec.as_mut_ptr()) };
            if rc != 0 {
                let error = std::io::Error::last_os_error();
                // ENOMEM: the range is no longer mapped at all.
                assert_eq!(error.raw_os_error(), Some(libc::ENOMEM), "mincore: {error}");
                return 0;
            }
            vec.iter().filter(|b| *b & 1 == 1).count()
        };
        let block = vec![1u8; LEN + page];
        let addr = (block.as_ptr() as usize).next_multiple_of(page);
        std::hint::black_box(&block);
        assert!(resident(addr) > LEN / page * 9 / 10);
        drop(block);
        let before = resident(addr);
        super::return_freed();
        let after = resident(addr);
        assert!(
            after < LEN / page / 10,
            "{before} -> {after} pages resident"
        );
    }
}
