//! `MISC_CHECK` (keepalived), ldirectord's `checktype = external`, mon's monitor scripts: run a
//! program; exit 0 is up, anything else down. With `misc_dynamic`, exit 1 is down and 2–255 is
//! up with the server's weight set to the status − 2 (keepalived's rule for one checker); exit 0
//! leaves the weight as it was.
//!
//! The prober runs the program without a shell, kills it at the probe's deadline (the core fails
//! the probe then), and reports how it ended through [`MiscCheck::judge`]. A program that cannot
//! be started is down with the reason, never a crash.

use alloc::string::String;
use alloc::vec::Vec;

use super::outcome::{Detail, Outcome};

/// An external program check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiscCheck {
    /// The program (`misc_path`'s first word).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `misc_dynamic`: the exit status sets the weight.
    pub dynamic: bool,
}

/// How a check program ended, as the prober saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It could not be run: the prober's words for why (missing, not executable).
    Failed(String),
}

impl MiscCheck {
    /// A check running `program` with `args`.
    pub fn new(program: &str, args: &[&str]) -> Self {
        MiscCheck { program: program.into(), args: args.iter().map(|a| String::from(*a)).collect(), dynamic: false }
    }

    /// The same check with `misc_dynamic`.
    pub fn with_dynamic_weight(mut self) -> Self {
        self.dynamic = true;
        self
    }

    /// Why the check cannot be used, if it cannot: no program.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.program.is_empty() {
            return Err("misc check needs a program");
        }
        Ok(())
    }

    /// The verdict on how the program ended.
    pub fn judge(&self, exit: Exit) -> Outcome {
        match exit {
            Exit::Code(0) => Outcome::up(Detail::Exit(0)),
            Exit::Code(c @ 2..=255) if self.dynamic => Outcome::up(Detail::Exit(c)).with_weight(c.unsigned_abs() - 2),
            Exit::Code(c) => Outcome::down(Detail::Exit(c)),
            Exit::Signal(s) => Outcome::down(Detail::Signal(s)),
            Exit::Failed(why) => Outcome::down(Detail::Io(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_plain_and_dynamic() {
        let plain = MiscCheck::new("/usr/local/bin/check", &["--host", "rs1"]);
        assert_eq!(plain.args, ["--host", "rs1"]);
        assert_eq!(plain.judge(Exit::Code(0)), Outcome::up(Detail::Exit(0)));
        assert_eq!(plain.judge(Exit::Code(1)), Outcome::down(Detail::Exit(1)));
        assert_eq!(plain.judge(Exit::Code(12)), Outcome::down(Detail::Exit(12)));
        let dynamic = plain.with_dynamic_weight();
        assert_eq!(dynamic.judge(Exit::Code(0)), Outcome::up(Detail::Exit(0)));
        assert_eq!(dynamic.judge(Exit::Code(1)), Outcome::down(Detail::Exit(1)));
        assert_eq!(dynamic.judge(Exit::Code(2)), Outcome::up(Detail::Exit(2)).with_weight(0));
        assert_eq!(dynamic.judge(Exit::Code(255)), Outcome::up(Detail::Exit(255)).with_weight(253));
        assert_eq!(dynamic.judge(Exit::Code(256)), Outcome::down(Detail::Exit(256)));
        assert_eq!(dynamic.judge(Exit::Code(-1)), Outcome::down(Detail::Exit(-1)));
    }

    #[test]
    fn a_program_that_cannot_run_is_down_with_why() {
        let c = MiscCheck::new("/nonexistent", &[]);
        let o = c.judge(Exit::Failed("No such file or directory".into()));
        assert!(!o.up);
        assert_eq!(alloc::format!("{}", o.reason), "No such file or directory");
        assert_eq!(c.judge(Exit::Signal(9)), Outcome::down(Detail::Signal(9)));
        assert!(MiscCheck::new("", &[]).validate().is_err());
    }
}
