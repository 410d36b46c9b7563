//! The server's counters, in the Prometheus (OpenMetrics) text format: calls by action and
//! outcome, job run times, jobs waiting for and holding a slot, audit append latency, and the
//! batch cache's hits and misses. Every label comes from a fixed set (action names, outcomes,
//! production / development): nothing a caller sends becomes a label, so neither names nor
//! values leak here and the number of series stays bounded.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

use crate::authz::Action;
use crate::call_log::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    action: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    env: &'static str,
}

/// Where a job runs (the `env` label of job metrics).
#[derive(Clone, Copy, Debug)]
pub enum JobEnv {
    /// On the full data, checked and reviewed.
    Production,
    /// On development samples.
    Development,
}

impl JobEnv {
    fn label(self) -> JobLabels {
        JobLabels {
            env: match self {
                JobEnv::Production => "production",
                JobEnv::Development => "development",
            },
        }
    }
}

/// The server's metrics (cheap to share: the metrics are atomics behind `Arc`s).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    job_seconds: Family<JobLabels, Histogram>,
    queued: Family<JobLabels, Gauge>,
    running: Family<JobLabels, Gauge>,
}

impl Metrics {
    /// The metrics, with the audit chain's append latency histogram among them.
    pub fn new(audit_append_seconds: Histogram) -> Metrics {
        let mut registry = Registry::with_prefix("erhai");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "RPC calls by action and outcome (ok, denied, refused, failed)",
            calls.clone(),
        );
        let job_seconds = Family::<JobLabels, Histogram>::new_with_constructor(|| -> Histogram {
            Histogram::new(exponential_buckets(0.01, 2.5, 12))
        });
        registry.register(
            "job_run_seconds",
            "Time a job held its slot (planning, execution, checks), by environment",
            job_seconds.clone(),
        );
        let queued = Family::<JobLabels, Gauge>::default();
        registry.register(
            "jobs_queued",
            "Jobs waiting for a slot (limits.concurrent_jobs)",
            queued.clone(),
        );
        let running = Family::<JobLabels, Gauge>::default();
        registry.register("jobs_running", "Jobs holding a slot", running.clone());
        registry.register(
            "audit_append_seconds",
            "Time an audit event took to become durable",
            audit_append_seconds,
        );
        // The series exist from the start, so that a dashboard shows 0 rather than nothing.
        for env in [JobEnv::Production, JobEnv::Development] {
            queued.get_or_create_owned(&env.label());
            running.get_or_create_owned(&env.label());
        }
        Metrics {
            registry,
            calls,
            job_seconds,
            queued,
            running,
        }
    }

    /// Counts a finished call.
    pub fn call(&self, action: Action, outcome: Outcome) {
        self.calls
            .get_or_create(&CallLabels {
                action: action.name(),
                outcome: outcome.name(),
            })
            .inc();
    }

    /// Waits for one of `slots` as a job of `env`, counted as queued meanwhile and as running
    /// while the returned slot is held; its run time is observed when it is dropped.
    pub async fn job_slot<'a>(
        &self,
        slots: &'a Semaphore,
        env: JobEnv,
    ) -> Result<JobSlot<'a>, AcquireError> {
        let label = env.label();
        let queued = GaugeHeld::inc(self.queued.get_or_create_owned(&label));
        let permit = slots.acquire().await?;
        drop(queued);
        Ok(JobSlot {
            _permit: permit,
            _running: GaugeHeld::inc(self.running.get_or_create_owned(&label)),
            seconds: self.job_seconds.get_or_create_owned(&label),
            started: Instant::now(),
        })
    }

    /// The text exposition of every metric; `cache` is the batch cache's (hits, misses).
    pub fn encode(&self, cache: (u64, u64)) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        // The cache counts live in the engine; they are read at each scrape.
        let mut now = Registry::with_prefix("erhai");
        for (name, help, value) in [
            (
                "batch_cache_hits",
                "Dataset versions a job found decrypted in the batch cache",
                cache.0,
            ),
            (
                "batch_cache_misses",
                "Dataset versions a job had to decrypt (the cache was cold or too small)",
                cache.1,
            ),
        ] {
            let c = Counter::<u64>::default();
            c.inc_by(value);
            now.register(name, help, c);
        }
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &now)?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// A gauge raised while this is held.
struct GaugeHeld(Gauge);

impl GaugeHeld {
    fn inc(g: Gauge) -> GaugeHeld {
        g.inc();
        GaugeHeld(g)
    }
}

impl Drop for GaugeHeld {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A job's slot: released, and its run time observed, when dropped.
pub struct JobSlot<'a> {
    _permit: SemaphorePermit<'a>,
    _running: GaugeHeld,
    seconds: Histogram,
    started: Instant,
}

impl Drop for JobSlot<'_> {
    fn drop(&mut self) {
        self.seconds.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_count_queued_and_running_jobs_and_encode_as_text() {
        let m = Metrics::new(Histogram::new(exponential_buckets(0.001, 2.0, 4)));
        m.call(Action::WhoAmI, Outcome::Ok);
        m.call(Action::WhoAmI, Outcome::Ok);
        m.call(Action::SubmitQuery, Outcome::Denied);
        let slots = Semaphore::new(1);
        let slot = m.job_slot(&slots, JobEnv::Production).await.expect("slot");
        let text = m.encode((3, 1)).expect("encode");
        assert!(
            text.contains(r#"erhai_calls_total{action="who_am_i",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"erhai_calls_total{action="submit_query",outcome="denied"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"erhai_jobs_running{env="production"} 1"#),
            "{text}"
        );
        assert!(text.contains("erhai_batch_cache_hits_total 3"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        drop(slot);
        let text = m.encode((0, 0)).expect("encode");
        assert!(
            text.contains(r#"erhai_jobs_running{env="production"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"erhai_job_run_seconds_count{env="production"} 1"#),
            "{text}"
        );
    }
}
