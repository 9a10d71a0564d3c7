//! A service that only takes time to start and stop: the reference's dummy services
//! (simple's AsyncService1 and AsyncService2, complex's AsyncService2).

use std::time::Duration;

use crate::service::{BoxFuture, Service, ServiceContext};

use super::TimeScale;

/// A service whose start and stop each take a (scaled) delay, and whose start can be made
/// to fail on purpose.
pub struct Dummy {
    name: &'static str,
    delay: Duration,
    time_scale: TimeScale,
    fail_start: bool,
}

impl Dummy {
    /// A dummy named `name` whose start and stop each take `delay` scaled by `time_scale`;
    /// with `fail_start`, its start fails once the delay has passed.
    pub fn new(name: &'static str, delay: Duration, time_scale: TimeScale, fail_start: bool) -> Self {
        Self {
            name,
            delay,
            time_scale,
            fail_start,
        }
    }
}

impl Service for Dummy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.time_scale.sleep(self.delay).await;
            if self.fail_start {
                anyhow::bail!("start failed on purpose (--fail-start {})", self.name);
            }
            Ok(())
        })
    }

    fn stop<'a>(&'a mut self, _ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.time_scale.sleep(self.delay).await;
            Ok(())
        })
    }
}
