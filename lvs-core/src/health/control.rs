//! Where the monitor's reactions go: the director's control calls for real servers
//! (`ipvsadm -a`, `-e`, `-d`), behind a trait so that an application running one director per
//! core can apply each change to every shard.

use crate::addr::{Endpoint, ServiceKey};
use crate::dest::RealServer;
use crate::director::Director;
use crate::error::Error;

/// The control calls the monitor makes. [`Director`] implements it with its own calls.
pub trait Control {
    /// `ipvsadm -a`: add a real server.
    ///
    /// # Errors
    /// As [`Director::add_dest`].
    fn add_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), Error>;

    /// `ipvsadm -e`: change a real server's weight (or other settings).
    ///
    /// # Errors
    /// As [`Director::edit_dest`].
    fn edit_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), Error>;

    /// `ipvsadm -d`: remove a real server.
    ///
    /// # Errors
    /// As [`Director::del_dest`].
    fn del_dest(&mut self, key: &ServiceKey, endpoint: &Endpoint) -> Result<(), Error>;
}

impl Control for Director {
    fn add_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), Error> {
        Director::add_dest(self, key, rs).map(|_| ())
    }

    fn edit_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), Error> {
        Director::edit_dest(self, key, rs)
    }

    fn del_dest(&mut self, key: &ServiceKey, endpoint: &Endpoint) -> Result<(), Error> {
        Director::del_dest(self, key, endpoint)
    }
}

/// Brings one table entry from `installed` (the weight in the table, `None` = absent) to
/// `want`, tolerating a table that drifted (an entry someone else added or removed), and
/// returns what is installed afterwards.
///
/// # Errors
/// The director's error; then `installed` still holds.
pub(crate) fn apply(
    ctl: &mut dyn Control,
    key: &ServiceKey,
    rs: RealServer,
    installed: Option<u32>,
    want: Option<u32>,
) -> Result<Option<u32>, Error> {
    if installed == want {
        return Ok(want);
    }
    match want {
        Some(weight) => {
            let rs = RealServer { weight, ..rs };
            let first = if installed.is_some() { ctl.edit_dest(key, rs) } else { ctl.add_dest(key, rs) };
            match first {
                Err(Error::NoSuchDest) => ctl.add_dest(key, rs),
                Err(Error::DestExists) => ctl.edit_dest(key, rs),
                other => other,
            }?;
        }
        None => match ctl.del_dest(key, &rs.endpoint) {
            Ok(()) | Err(Error::NoSuchDest) => {}
            Err(e) => return Err(e),
        },
    }
    Ok(want)
}
