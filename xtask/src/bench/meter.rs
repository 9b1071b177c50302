//! Who used the machine's CPU over a stretch of the benchmark: this process (the
//! ceiling clients, the polling) and the whole machine, so that what other
//! processes took from a shared machine shows in the report.

use super::Result;
use crate::proc_stat::{machine_busy_seconds, own_cpu_seconds};

/// CPU readings at one moment.
#[derive(Clone, Copy, Debug)]
pub(super) struct CpuMark {
    own_s: f64,
    machine_s: f64,
}

/// CPU used between a [`CpuMark`] and now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct CpuSpent {
    /// By this process (xtask).
    pub(super) own_s: f64,
    /// By every process on the machine, interrupts included.
    pub(super) machine_s: f64,
}

impl CpuMark {
    pub(super) fn now() -> Result<Self> {
        Ok(Self {
            own_s: own_cpu_seconds()?,
            machine_s: machine_busy_seconds()?,
        })
    }

    pub(super) fn spent(&self) -> Result<CpuSpent> {
        let now = Self::now()?;
        Ok(CpuSpent {
            own_s: (now.own_s - self.own_s).max(0.0),
            machine_s: (now.machine_s - self.machine_s).max(0.0),
        })
    }
}
