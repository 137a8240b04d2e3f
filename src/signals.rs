//! The stop and upgrade signals, seen first by us: connections start
//! draining the moment `SIGTERM` or `SIGQUIT` arrives, before Pingora's
//! handover pause (5 s on upgrade) and grace period begin, so keep-alive
//! clients move to a fresh connection (the new process, on upgrade) while
//! this one still answers them.

use crate::conns::Conns;
use async_trait::async_trait;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// Pingora's Unix signals (`SIGQUIT` upgrade, `SIGTERM` stop, `SIGINT`
/// fast stop), with draining started on the graceful ones.
pub struct DrainingSignals(pub Arc<Conns>);

#[async_trait]
impl ShutdownSignalWatch for DrainingSignals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            log::error!("cannot listen for stop signals; stopping now");
            return ShutdownSignal::FastShutdown;
        };
        let s = tokio::select! {
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
            _ = term.recv() => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::FastShutdown,
        };
        match s {
            ShutdownSignal::GracefulUpgrade => self.0.start_draining(crate::conns::DRAIN_IDLE),
            ShutdownSignal::GracefulTerminate => self.0.start_draining(crate::conns::STOP_IDLE),
            ShutdownSignal::FastShutdown => {}
        }
        s
    }
}
