//! The processor's prefetch instruction for the director's burst (`prefetch` in the kernel's
//! `include/linux/prefetch.h`, `prefetcht0` on x86_64, `prfm pldl1keep` on aarch64): the core
//! forbids `unsafe`, so it takes the instruction as a hook ([`lvs_core::Prefetch`]).

/// Asks the processor to start loading every line in `lines` into its caches.
pub(crate) fn lines(lines: &[*const u8]) {
    for &p in lines {
        line(p);
    }
}

/// `prefetcht0` of the line at `p`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn line(p: *const u8) {
    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch is a hint: it reads nothing architecturally visible and never faults,
    // whatever the address; SSE, which provides it, is part of every x86_64 processor.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
}

/// `prfm pldl1keep` of the line at `p`.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn line(p: *const u8) {
    // SAFETY: PRFM is a hint: it changes no register or memory and never faults, whatever the
    // address (Arm ARM, "Prefetch memory"); the operands touch no stack or flags.
    unsafe { core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) }
}
