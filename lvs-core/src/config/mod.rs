//! Text formats in and out of a [`Director`](crate::Director), one room per format. Each reads
//! into control [`Command`](crate::Command)s and the director's public API, and writes from what
//! the director lets anyone read; the director knows none of them.
//!
//! - [`ipvsadm`] — `ipvsadm` command lines, `-S`/`-R` rule files and the `-L` listings.

pub mod ipvsadm;

pub use ipvsadm::command::parse_command;
pub use ipvsadm::listing::{list, render_stats, stats_rows, sum_rows, ListOptions, StatsRow};
pub use ipvsadm::rules::{parse_rules, restore, save};
