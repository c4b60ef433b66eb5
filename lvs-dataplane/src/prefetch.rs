//! The prefetch hook a [`Director`](lvs_core::Director) takes for its bursts
//! ([`DirectorConfig::prefetch`](lvs_core::DirectorConfig::prefetch)): the processor's prefetch
//! instruction, which the `unsafe`-free core cannot issue itself.

/// The hook for this processor: `prefetcht0` on x86_64, `prfm pldl1keep` on aarch64, `None`
/// elsewhere (the director then reads its lines without a prefetch). [`Runtime`] installs it.
///
/// [`Runtime`]: crate::runtime::Runtime
///
/// ```
/// # use lvs_core::DirectorConfig;
/// let cfg = DirectorConfig { prefetch: lvs_dataplane::prefetch::hook(), ..DirectorConfig::default() };
/// # let _ = cfg;
/// ```
pub fn hook() -> Option<lvs_core::Prefetch> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return Some(crate::sys::prefetch::lines);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return None;
}
