//! What the ledger's test files share: an owner's admin outbox in memory, and varied request records.

// Each test file compiles its own copy and uses what it needs.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use simpul_core::audit::record::{Outcome, RequestRecord, Source};
use simpul_core::element::{Element, ElementSet};
use simpul_core::wire::code::ResponseCode;
use simpul_core::wire::method::Method;
use simpul_ledger::{AdminEvent, AdminOutbox};

/// An owner's admin outbox, in memory: events are numbered from 1 in the order they were committed.
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<std::sync::Mutex<Vec<AdminEvent>>>);

impl Outbox {
    pub fn commit(&self, event: AdminEvent) {
        self.0.lock().unwrap().push(event);
    }

    /// How many events were committed.
    pub fn len(&self) -> u64 {
        self.0.lock().unwrap().len() as u64
    }
}

impl AdminOutbox for Outbox {
    fn events_after(&self, after: u64) -> Result<Vec<(u64, AdminEvent)>, String> {
        let events = self.0.lock().unwrap();
        Ok(events.iter().cloned().enumerate().map(|(i, e)| (i as u64 + 1, e)).skip(after as usize).collect())
    }
}

/// When record `i` happened: 1.337 s apart, with nanoseconds that vary.
pub fn at(i: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
        + Duration::milliseconds(i as i64 * 1_337)
        + Duration::nanoseconds((i * 7_919 % 1_000_000) as i64)
}

/// A varied request: every outcome and source, optional fields present and absent, text that needs escaping.
pub fn request(i: u64) -> RequestRecord {
    let n = i as usize;
    let requested: ElementSet = Element::ALL.iter().copied().skip(n % 7).take(1 + n % 5).collect();
    let returned: ElementSet = requested.iter().take(n % 3).collect();
    let method = Method::ALL[n % Method::ALL.len()];
    let source = [Source::Gateway, Source::Cache, Source::Upstream][n % 3];
    RequestRecord {
        request_id: format!("req-{i:05}"),
        institution: (!i.is_multiple_of(5)).then(|| format!("DINKES-{}", 3374 + i % 3)),
        user: (!i.is_multiple_of(5)).then(|| {
            if i.is_multiple_of(11) {
                "op \"kutip\" \\ é\n".to_owned()
            } else {
                format!("operator{}", i % 4)
            }
        }),
        device: format!("laptop-{}", i % 6),
        tunnel_source: format!("10.77.0.{}", 2 + i % 200),
        ip_claim: i.is_multiple_of(3).then(|| format!("192.168.1.{}", i % 250)),
        route: format!("/dukcapil/get_json/DINKES/{}", method.wire_name()),
        method: (!i.is_multiple_of(9)).then_some(method),
        elements_requested: requested,
        elements_returned: returned,
        outcome: match i % 4 {
            0 => Outcome::Data,
            1 => Outcome::Code(ResponseCode::ALL[n % ResponseCode::ALL.len()]),
            2 => Outcome::Http(429),
            _ => Outcome::Http(502),
        },
        source,
        quota_charged: source != Source::Gateway,
        latency_us: 900 + i * 37,
        bytes_in: 200 + i,
        bytes_out: 1_000 + 3 * i,
        subjects: Vec::new(),
    }
}
