//! The IPVS schedulers with the kernel's exact choices, one module per `ip_vs_<name>.c`:
//! `rr wrr lc wlc sed nq dh sh lblc lblcr` (the classic ten) and `mh fo ovf twos`.
//!
//! Each follows its kernel file in every detail that changes a choice: the list order it walks
//! (newest server first), where a walk resumes, tie-breaks (the first best in list order wins),
//! the overhead formulas, how weight 0 and the overload flag exclude a server, and the hash
//! functions, multipliers and table sizes. [`by_name`] makes one from its `ipvsadm -s` name.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(fuzzing), warn(missing_docs))]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

extern crate alloc;

mod cache;
pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
mod rank;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod util;
pub mod wlc;
pub mod wrr;

use alloc::boxed::Box;

use lvs_core::sched::{SchedError, Scheduler};

/// Every scheduler name [`by_name`] knows, as `ipvsadm -s` spells them.
pub const NAMES: [&str; 14] =
    ["rr", "wrr", "lc", "wlc", "sed", "nq", "dh", "sh", "lblc", "lblcr", "mh", "fo", "ovf", "twos"];

/// Makes a scheduler by name.
///
/// # Errors
/// [`SchedError::Unknown`] for a name not in [`NAMES`].
pub fn by_name(name: &str) -> Result<Box<dyn Scheduler>, SchedError> {
    Ok(match name {
        "rr" => Box::new(rr::RoundRobin::default()),
        "wrr" => Box::new(wrr::WeightedRoundRobin::default()),
        "lc" => Box::new(lc::LeastConn::default()),
        "wlc" => Box::new(wlc::WeightedLeastConn::default()),
        "sed" => Box::new(sed::ShortestExpectedDelay::default()),
        "nq" => Box::new(nq::NeverQueue::default()),
        "dh" => Box::new(dh::DestHash::default()),
        "sh" => Box::new(sh::SourceHash::default()),
        "lblc" => Box::new(lblc::Lblc::default()),
        "lblcr" => Box::new(lblcr::Lblcr::default()),
        "mh" => Box::new(mh::Maglev::default()),
        "fo" => Box::new(fo::WeightedFailover::default()),
        "ovf" => Box::new(ovf::WeightedOverflow::default()),
        "twos" => Box::new(twos::PowerOfTwo),
        _ => return Err(SchedError::Unknown),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_knows_every_name() {
        for n in NAMES {
            assert_eq!(by_name(n).map(|s| s.name()).ok(), Some(n));
        }
        assert!(matches!(by_name("p2c"), Err(SchedError::Unknown)));
    }
}
