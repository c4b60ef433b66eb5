//! ipvsadm's text formats (`ipvsadm.c`, `libipvs.c`): the `-S`/`-R` rule format and single
//! commands in ([`rules`]), and the `-L` family of listings out ([`listing`]), laid out byte for
//! byte as ipvsadm 1.31 prints them so outputs can be diffed against the real tool.

pub mod listing;
pub mod rules;

pub use listing::{list, render_stats, stats_rows, sum_rows, ListOptions, StatsRow};
pub use rules::{parse_command, parse_rules, save, Command};
