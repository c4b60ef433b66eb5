//! ipvsadm's text formats (`ipvsadm.c`, `libipvs.c`), laid out byte for byte as ipvsadm 1.31
//! reads and prints them so outputs can be diffed against the real tool: one command line
//! ([`command`]), rule files in and out ([`rules`]), the `-L` family of listings ([`listing`]),
//! a whole invocation with ipvsadm's output and exit status ([`cli`]), ipvsadm's words for
//! what the kernel refuses ([`strerror`]), DPVS's `-G` listing of FullNAT local addresses
//! ([`laddr`]), and what they share (`format`: spellings and ipvsadm's sort order).

pub mod cli;
pub mod command;
pub(crate) mod format;
pub mod laddr;
pub mod listing;
pub mod rules;
pub mod strerror;
