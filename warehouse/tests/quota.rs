//! Daily quotas and access hours against an injected clock: spent to exactly zero, refused, reset at local midnight;
//! which outcomes spend; and what `quotaLimiter` says at each step.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::{consumer, nik_of, samples, Server};
use serde_json::{json, Value};
use simpul_warehouse::population::SampleKind;

const QUOTA: &str = "/dukcapil/get_json/Q3/CALL_NIK";
const LEGACY: &str = "/dukcapil/get_json/Q2L/CALL_NIK";
const HOURS: &str = "/dukcapil/get_json/HOURS/CALL_NIK";

fn config(timezone: &str) -> String {
    [
        format!("timezone = \"{timezone}\"\n"),
        consumer("Q3", "q3", "pw", "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 3"),
        consumer("Q2L", "q2l", "pw", "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 2\ndialect = \"legacy\""),
        consumer(
            "HOURS",
            "hours",
            "pw",
            "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 100\naccess_hours = \"08:00-16:00\"",
        ),
        consumer("OTHER", "other", "pw", "allowed_addresses = [\"10.0.0.1\"]\nmethods = [\"CALL_NIK\"]\ndaily_quota = 100"),
    ]
    .concat()
}

fn body(user: &str, nik: &str) -> Value {
    json!({"user_id": user, "password": "pw", "NIK": nik})
}

#[tokio::test]
async fn quota_is_spent_to_exactly_zero_then_refused_until_local_midnight() {
    let server = Server::start(&config("Asia/Jakarta")).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);

    for remaining in [2, 1, 0] {
        let reply = client.post_json(QUOTA, &body("q3", &nik)).await;
        assert_eq!(reply.content()[0]["NIK"].as_u64(), Some(nik.parse().unwrap()), "{}", reply.text());
        assert_eq!(reply.quota(), remaining);
    }
    for _ in 0..2 {
        let reply = client.post_json(QUOTA, &body("q3", &nik)).await;
        assert_eq!(reply.content()[0]["RESPONSE"], "Kuota Akses Hari Ini Telah Habis");
        reply.assert_code("05");
        assert_eq!(reply.quota(), 0);
    }

    // 23:59:59 in Jakarta is still the same day; midnight in Jakarta (17:00 UTC) is a new one.
    server.clock.set(Utc.with_ymd_and_hms(2026, 7, 6, 16, 59, 59).unwrap());
    client.post_json(QUOTA, &body("q3", &nik)).await.assert_code("05");
    server.clock.set(Utc.with_ymd_and_hms(2026, 7, 6, 17, 0, 0).unwrap());
    let reply = client.post_json(QUOTA, &body("q3", &nik)).await;
    assert_eq!((reply.code(), reply.quota()), (None, 2), "a fresh day: {}", reply.text());
}

#[tokio::test]
async fn the_legacy_quota_text_is_the_one_batch_clients_stop_on() {
    let server = Server::start(&config("Asia/Jakarta")).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);
    assert_eq!(client.post_json(LEGACY, &body("q2l", &nik)).await.quota(), 1);
    assert_eq!(client.post_json(LEGACY, &body("q2l", &nik)).await.quota(), 0);
    let reply = client.post_json(LEGACY, &body("q2l", &nik)).await;
    assert_eq!(reply.respon().as_deref(), Some("Kuota Akses Hari ini telah Habis"));
    assert_eq!(reply.quota(), 0);
}

#[tokio::test]
async fn the_day_follows_the_configured_time_zone() {
    // 15:30 UTC is 00:30 the next day in Jayapura (UTC+9) but 22:30 the same day in Jakarta.
    let server = Server::start(&config("Asia/Jayapura")).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);
    server.clock.set(Utc.with_ymd_and_hms(2026, 7, 6, 14, 0, 0).unwrap());
    for _ in 0..3 {
        client.post_json(QUOTA, &body("q3", &nik)).await;
    }
    client.post_json(QUOTA, &body("q3", &nik)).await.assert_code("05");
    server.clock.set(Utc.with_ymd_and_hms(2026, 7, 6, 15, 30, 0).unwrap());
    assert_eq!(client.post_json(QUOTA, &body("q3", &nik)).await.quota(), 2);
}

#[tokio::test]
async fn which_outcomes_spend_quota() {
    let server = Server::start(&config("Asia/Jakarta")).await;
    let client = server.client();
    let nik = |kind| nik_of(&samples(kind, 1)[0]);
    let path = "/dukcapil/get_json/HOURS/CALL_NIK";
    let not_granted = "/dukcapil/get_json/HOURS/CALL_NIK_GET_KK";
    // (path, body, code, quotaLimiter afterwards); HOURS starts with 100.
    let table: Vec<(&str, Value, Option<&str>, u64)> = vec![
        // Refused before authentication: nothing spent, nothing told.
        (path, json!({"user_id": "hours", "password": "salah", "NIK": nik(SampleKind::Alive)}), Some("03"), 0),
        (path, json!({"user_id": "hours", "NIK": nik(SampleKind::Alive)}), Some("09"), 0),
        (path, json!("not an object"), Some("07"), 0),
        // Authenticated, refused before the quota gate: nothing spent, the remaining quota told.
        (not_granted, body("hours", &nik(SampleKind::Alive)), Some("07"), 100),
        // Past the gate: every outcome spends one.
        (path, body("hours", &nik(SampleKind::Alive)), None, 99),
        (path, body("hours", &nik(SampleKind::Unknown)), Some("13"), 98),
        (path, body("hours", &nik(SampleKind::Deceased)), Some("11"), 97),
        (path, body("hours", &nik(SampleKind::Duplicate)), Some("12"), 96),
        (path, body("hours", &nik(SampleKind::Inactive)), Some("14"), 95),
        (path, body("hours", "3374011313870001"), Some("15"), 94),
        (path, json!({"user_id": "hours", "password": "pw"}), Some("07"), 93),
    ];
    for (path, body, code, quota) in table {
        let reply = client.post_json(path, &body).await;
        assert_eq!((reply.code().as_deref(), reply.quota()), (code, quota), "{body}: {}", reply.text());
    }
    // Outside access hours: refused (06) with the remaining quota, nothing spent.
    server.clock.set(Utc.with_ymd_and_hms(2026, 7, 6, 10, 0, 0).unwrap()); // 17:00 in Jakarta
    let reply = client.post_json(path, &body("hours", &nik(SampleKind::Alive))).await;
    assert_eq!((reply.code().as_deref(), reply.quota()), (Some("06"), 93));
    // A consumer whose address does not match: 04, quota 0.
    let reply = client.post_json("/dukcapil/get_json/OTHER/CALL_NIK", &body("other", &nik(SampleKind::Alive))).await;
    assert_eq!((reply.code().as_deref(), reply.quota()), (Some("04"), 0));
}

#[tokio::test]
async fn access_hours_follow_the_injected_clock() {
    let server = Server::start(&config("Asia/Jakarta")).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);
    let at = |h: u32, m: u32| {
        Utc.with_ymd_and_hms(2026, 7, 6, 0, 0, 0).unwrap()
            + Duration::hours(i64::from(h) - 7)
            + Duration::minutes(i64::from(m))
    };
    // (local time in Jakarta, allowed)
    let table =
        [((7, 59), false), ((8, 0), true), ((12, 30), true), ((15, 59), true), ((16, 0), false), ((23, 0), false)];
    for ((h, m), allowed) in table {
        server.clock.set(at(h, m));
        let reply = client.post_json(HOURS, &body("hours", &nik)).await;
        if allowed {
            assert_eq!(reply.code(), None, "{h:02}:{m:02}: {}", reply.text());
        } else {
            assert_eq!(reply.content()[0]["RESPONSE"], "Diluar Jam Akses", "{h:02}:{m:02}");
            reply.assert_code("06");
        }
    }
}

#[tokio::test]
async fn the_agreement_period_suspension_and_a_disabled_user_answer_16_and_17_without_spending() {
    let grant = "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 5";
    let config = [
        consumer("PKS", "pks", "pw", &format!("{grant}\nvalid_from = 2026-07-01\nvalid_until = 2026-07-06")),
        consumer("SUSP", "susp", "pw", &format!("{grant}\nsuspended = true\ndialect = \"legacy\"")),
        consumer("OFF", "off", "pw", &format!("{grant}\nuser_disabled = true")),
    ]
    .concat();
    let server = Server::start(&config).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);
    let pks = "/dukcapil/get_json/PKS/CALL_NIK";
    let at_jakarta = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 7, d, h, 0, 0).unwrap() - Duration::hours(7);

    // (local day and hour in Jakarta, agreement in force): the last day counts whole, the next does not.
    for ((d, h), in_force) in [((30, 23), false), ((1, 0), true), ((6, 23), true), ((7, 0), false)] {
        let when = if d == 30 { at_jakarta(1, h) - Duration::days(1) } else { at_jakarta(d, h) };
        server.clock.set(when);
        let reply = client.post_json(pks, &body("pks", &nik)).await;
        if in_force {
            assert_eq!(reply.code(), None, "day {d} {h}:00: {}", reply.text());
        } else {
            assert_eq!(reply.content()[0]["RESPONSE"], "Instansi Tidak Aktif", "day {d} {h}:00");
            reply.assert_code("16");
            // The caller has authenticated, so it learns its remaining quota, as after any later refusal.
            assert_eq!(reply.quota(), 5);
        }
    }
    server.clock.set(at_jakarta(3, 9));
    let reply = client.post_json("/dukcapil/get_json/SUSP/CALL_NIK", &body("susp", &nik)).await;
    assert_eq!(reply.respon().as_deref(), Some("Instansi Tidak Aktif"), "{}", reply.text());
    let reply = client.post_json("/dukcapil/get_json/OFF/CALL_NIK", &body("off", &nik)).await;
    assert_eq!(reply.content()[0]["RESPONSE"], "User ID Tidak Aktif");
    reply.assert_code("17");
    // A wrong password still says 03, so 16 and 17 tell nothing to someone who does not hold the credentials.
    let reply = client
        .post_json("/dukcapil/get_json/OFF/CALL_NIK", &json!({"user_id": "off", "password": "x", "NIK": nik}))
        .await;
    reply.assert_code("03");
    // Refusals spent nothing: on 6 July only the 23:00 request spent, so this one leaves 5 - 2.
    server.clock.set(at_jakarta(6, 9));
    assert_eq!(client.post_json(pks, &body("pks", &nik)).await.quota(), 3);
}
