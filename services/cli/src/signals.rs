//! SIGINT and SIGTERM as a future that completes on the first of them.
//! The handlers are installed when [`Shutdown::install`] returns, before
//! anything is printed, so a signal sent right after start-up is never
//! lost to the default action.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
}

impl Shutdown {
    pub fn install() -> anyhow::Result<Shutdown> {
        Ok(Shutdown {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT: shutting down"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    }
}
