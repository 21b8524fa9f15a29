//! The Dukcapil API over real TLS: both route styles, both dialects, every method, every code the warehouse
//! produces, and the request shapes field clients send.

mod common;

use common::{consumer, nik_of, samples, Client, Server};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use simpul_core::element::Element;
use simpul_core::wire::code::{ResponseCode, LEGACY_CLIENT_NOT_REGISTERED};
use simpul_warehouse::population::SampleKind;

const BPS: &str = "/dukcapil/get_json/BPS/CALL_NIK";
const BPS_ELEMENTS: [&str; 9] =
    ["NIK", "NO_KK", "NAMA_LGKP", "JENIS_KLMIN", "TGL_LHR", "NO_KEC", "NO_KAB", "NO_PROP", "KAB_NAME"];
const RSUD_ELEMENTS: [&str; 5] = ["NIK", "NAMA_LGKP", "TMPT_LHR", "TGL_LHR", "ALAMAT"];

fn config() -> String {
    let elements =
        |list: &[&str]| format!("[{}]", list.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(","));
    [
        consumer(
            "BPS",
            "bps",
            "rahasia-bps",
            &format!(
                "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\", \"CALL_NIK_GET_KK\", \"CALL_VERIFY_BY_ELEMEN\", \"CALL_AGREGAT\"]\nelements = {}\ndaily_quota = 1000",
                elements(&BPS_ELEMENTS)
            ),
        ),
        consumer(
            "RSUD",
            "rsud01",
            "rahasia-rsud",
            &format!(
                "allowed_addresses = [\"127.0.0.0/8\"]\nmethods = [\"CALL_NIK\", \"CALL_VERIFY_BY_ELEMEN\"]\nelements = {}\ndaily_quota = 1000\ndialect = \"legacy\"\nregion = \"32-76\"\nuserset = \"rsud_3276\"\nmethod_names = {{ cek_pasien = \"CALL_NIK\" }}",
                elements(&RSUD_ELEMENTS)
            ),
        ),
        consumer("NIKONLY", "nikonly", "pw", "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 1000"),
        consumer("FAR", "far", "pw", "allowed_addresses = [\"10.9.9.9\"]\nmethods = [\"CALL_NIK\"]\ndaily_quota = 10\ndialect = \"legacy\""),
        consumer("FARC", "farc", "pw", "allowed_addresses = [\"10.9.9.0/24\"]\nmethods = [\"CALL_NIK\"]\ndaily_quota = 10"),
    ]
    .concat()
}

fn bps(extra: Value) -> Value {
    let mut body = json!({"user_id": "bps", "password": "rahasia-bps"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

fn rsud(extra: Value) -> Value {
    let mut body = json!({"USER_ID": "rsud01", "PASSWORD": "rahasia-rsud"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

fn keys(record: &serde_json::Map<String, Value>) -> Vec<&str> {
    record.keys().map(String::as_str).collect()
}

#[tokio::test]
async fn call_nik_answers_the_granted_elements_in_both_route_styles() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let sample = &samples(SampleKind::Alive, 1)[0];
    let nik = nik_of(sample);
    let full = sample.to_json();

    let reply = client.post_json(BPS, &bps(json!({"NIK": nik}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    let content = reply.content();
    assert_eq!(content.len(), 1);
    assert_eq!(keys(&content[0]), BPS_ELEMENTS, "only granted elements, in wire order");
    for element in BPS_ELEMENTS {
        assert_eq!(content[0][element], full[element], "{element}");
    }
    assert!(content[0]["NIK"].is_u64() && content[0]["NO_KEC"].is_u64(), "numbers are JSON numbers");
    assert!(reply.text().starts_with(r#"{"content":[{"NIK":"#));
    assert!(reply.text().ends_with(r#","lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,"size":1,"quotaLimiter":999}"#));

    // The older regional style, with the method's aliases and the institution's own name, any case.
    for method in ["call_nik", "CALL_NIK", "BYNIK", "get_nik", "cek_pasien", "CEK_PASIEN"] {
        let path = format!("/dukcapil/get_json/32-76/rsud_3276/{method}");
        let reply = client.post_json(&path, &rsud(json!({"NIK": nik}))).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.text());
        let content = reply.content();
        assert_eq!(keys(&content[0]), RSUD_ELEMENTS, "{method}");
        assert_eq!(content[0]["NAMA_LGKP"], full["NAMA_LGKP"]);
    }
    // The central style reaches the same consumer by its id.
    let reply = client.post_json("/dukcapil/get_json/rsud/Call_Nik", &rsud(json!({"NIK": nik}))).await;
    assert_eq!(keys(&reply.content()[0]), RSUD_ELEMENTS);
}

#[tokio::test]
async fn every_code_in_the_coded_dialect() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let nik = |kind| nik_of(&samples(kind, 1)[0]);
    let alive = nik(SampleKind::Alive);
    let table: Vec<(&str, Value, ResponseCode)> = vec![
        (BPS, json!({"user_id": "bps", "password": "salah", "NIK": alive}), ResponseCode::LoginFailed),
        (BPS, json!({"user_id": "orang", "password": "rahasia-bps", "NIK": alive}), ResponseCode::LoginFailed),
        (BPS, json!({"user_id": "bps", "NIK": alive}), ResponseCode::EmptyCredentials),
        (BPS, json!({"user_id": " ", "password": "rahasia-bps", "NIK": alive}), ResponseCode::EmptyCredentials),
        (
            "/dukcapil/get_json/FARC/CALL_NIK",
            json!({"user_id": "farc", "password": "pw", "NIK": alive}),
            ResponseCode::DeviceMismatch,
        ),
        (BPS, bps(json!({})), ResponseCode::InvalidParameters),
        (
            "/dukcapil/get_json/NIKONLY/CALL_NIK_GET_KK",
            json!({"user_id": "nikonly", "password": "pw", "NIK": alive}),
            ResponseCode::InvalidParameters,
        ),
        (BPS, bps(json!({"NIK": nik(SampleKind::Deceased)})), ResponseCode::Deceased),
        (BPS, bps(json!({"NIK": nik(SampleKind::Duplicate)})), ResponseCode::Duplicate),
        (BPS, bps(json!({"NIK": nik(SampleKind::Unknown)})), ResponseCode::NotFound),
        (BPS, bps(json!({"NIK": nik(SampleKind::Inactive)})), ResponseCode::Inactive),
        (BPS, bps(json!({"NIK": "3374011313870001"})), ResponseCode::MalformedNik),
        (BPS, bps(json!({"NIK": "12345"})), ResponseCode::MalformedNik),
    ];
    for (path, body, want) in table {
        client.post_json(path, &body).await.assert_code(want.code());
    }
}

#[tokio::test]
async fn the_legacy_dialect_speaks_the_historical_texts() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let path = "/dukcapil/get_json/32-76/rsud_3276/call_nik";
    let nik = |kind| nik_of(&samples(kind, 1)[0]);
    let table: Vec<(&str, Value, &str)> = vec![
        (path, json!({"USER_ID": "rsud01", "PASSWORD": "salah", "NIK": nik(SampleKind::Alive)}), "Login Gagal"),
        (path, json!({"NIK": nik(SampleKind::Alive)}), "Login Gagal"),
        (path, rsud(json!({"NIK": nik(SampleKind::Unknown)})), "Data Tidak Ditemukan"),
        (path, rsud(json!({"NIK": "1234567890123456"})), "Data Tidak Ditemukan"),
        (path, rsud(json!({"NIK": nik(SampleKind::Deceased)})), "Data Ditemukan, Meninggal Dunia"),
        (path, rsud(json!({"NIK": nik(SampleKind::Duplicate)})), "Data Ditemukan, Data Ganda"),
        (
            path,
            rsud(json!({"NIK": nik(SampleKind::Inactive)})),
            "Data Ditemukan, Status Non Aktif silahkan hubungi Dinas Dukcapil",
        ),
        (path, rsud(json!({})), "Parameter Tidak Lengkap / Tidak Valid"),
        // 127.0.0.1 is registered (for other consumers), just not for FAR.
        ("/dukcapil/get_json/FAR/CALL_NIK", json!({"user_id": "far", "password": "pw"}), "IP Address Tidak Sesuai"),
    ];
    for (path, body, want) in table {
        let reply = client.post_json(path, &body).await;
        assert_eq!((reply.status, reply.respon().as_deref()), (StatusCode::OK, Some(want)), "{body}: {}", reply.text());
        assert_eq!(reply.content()[0].len(), 1, "RESPON only");
    }

    // A warehouse where no consumer lists 127.0.0.1: the address is not registered at all.
    let lonely = Server::start(&consumer(
        "FAR",
        "far",
        "pw",
        "allowed_addresses = [\"10.9.9.9\"]\nmethods = [\"CALL_NIK\"]\ndaily_quota = 10\ndialect = \"legacy\"",
    ))
    .await;
    let reply = lonely
        .client()
        .post_json("/dukcapil/get_json/FAR/CALL_NIK", &json!({"user_id": "far", "password": "pw"}))
        .await;
    assert_eq!(reply.respon().as_deref(), Some(LEGACY_CLIENT_NOT_REGISTERED));
    assert_eq!(reply.text().matches("IP Client  Tidak terdaftar").count(), 1, "two spaces");
}

#[tokio::test]
async fn the_legacy_dialect_speaks_access_hours_agreement_and_user_texts() {
    let legacy = "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 10\ndialect = \"legacy\"";
    let config = [
        // The test clock reads 10:00 in Jakarta.
        consumer("MALAM", "malam", "pw", &format!("{legacy}\naccess_hours = \"22:00-06:00\"")),
        consumer("PKS", "pks", "pw", &format!("{legacy}\nvalid_until = 2026-06-30")),
        consumer("SUSP", "susp", "pw", &format!("{legacy}\nsuspended = true")),
        consumer("OFF", "off", "pw", &format!("{legacy}\nuser_disabled = true")),
    ]
    .concat();
    let server = Server::start(&config).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);
    let table = [
        ("MALAM", "Diluar Jam Akses"),
        ("PKS", "Instansi Tidak Aktif"),
        ("SUSP", "Instansi Tidak Aktif"),
        ("OFF", "User ID Tidak Aktif"),
    ];
    for (id, want) in table {
        let path = format!("/dukcapil/get_json/{id}/CALL_NIK");
        let body = json!({"user_id": id.to_lowercase(), "password": "pw", "NIK": nik});
        let reply = client.post_json(&path, &body).await;
        assert_eq!((reply.status, reply.respon().as_deref()), (StatusCode::OK, Some(want)), "{id}: {}", reply.text());
        assert_eq!(reply.content()[0].len(), 1, "RESPON only");
        assert_eq!(reply.quota(), 10, "{id}: authenticated, nothing spent");
    }
}

#[tokio::test]
async fn family_on_the_regional_route_in_the_legacy_dialect() {
    let config = consumer(
        "PKM",
        "pkm",
        "pw",
        "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK_GET_KK\"]\nelements = [\"NIK\", \"NO_KK\", \"NAMA_LGKP\"]\ndaily_quota = 100\ndialect = \"legacy\"\nregion = \"33-74\"\nuserset = \"pkm_3374\"",
    );
    let server = Server::start(&config).await;
    let client = server.client();
    let path = "/dukcapil/get_json/33-74/pkm_3374/CALL_NIK_GET_KK";
    let body = |extra: Value| {
        let mut body = json!({"USER_ID": "pkm", "PASSWORD": "pw"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let sample = samples(SampleKind::Alive, 200)
        .into_iter()
        .find(|s| common::population().family(&s.resident.as_ref().unwrap().kk).is_some_and(|f| f.len() >= 3))
        .expect("a family of three or more");
    let kk = sample.resident.as_ref().unwrap().kk;
    let living: Vec<u64> = common::population()
        .family(&kk)
        .unwrap()
        .into_iter()
        .filter(|m| m.status == simpul_warehouse::population::ResidentStatus::Alive)
        .map(|m| m.nik.as_u64())
        .collect();

    for (method, extra) in
        [("CALL_NIK_GET_KK", json!({"NIK": nik_of(&sample)})), ("call_nik_get_kk", json!({"NO_KK": kk.to_string()}))]
    {
        let path = format!("/dukcapil/get_json/33-74/pkm_3374/{method}");
        let reply = client.post_json(&path, &body(extra)).await;
        assert_eq!(reply.status, StatusCode::OK);
        let content = reply.content();
        let niks: Vec<u64> = content.iter().map(|m| m["NIK"].as_u64().unwrap()).collect();
        assert_eq!(niks, living, "{method}: {}", reply.text());
        assert!(content.iter().all(|m| keys(m) == ["NIK", "NO_KK", "NAMA_LGKP"]), "{}", reply.text());
    }

    let table = [
        (json!({"NIK": nik_of(&samples(SampleKind::Unknown, 1)[0])}), "Data Tidak Ditemukan"),
        (json!({"NO_KK": "12"}), "Data Tidak Ditemukan"),
        (json!({}), "Parameter Tidak Lengkap / Tidak Valid"),
        (json!({"NIK": nik_of(&samples(SampleKind::Deceased, 1)[0])}), "Data Ditemukan, Meninggal Dunia"),
    ];
    for (extra, want) in table {
        let reply = client.post_json(path, &body(extra.clone())).await;
        assert_eq!(
            (reply.status, reply.respon().as_deref()),
            (StatusCode::OK, Some(want)),
            "{extra}: {}",
            reply.text()
        );
    }
}

#[tokio::test]
async fn family_by_nik_and_by_kk_lists_one_element_per_living_member() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let path = "/dukcapil/get_json/BPS/CALL_NIK_GET_KK";
    // A family of several members, so the listing is more than the person asked about.
    let sample = samples(SampleKind::Alive, 200)
        .into_iter()
        .find(|s| {
            let kk = s.resident.as_ref().unwrap().kk;
            common::population().family(&kk).is_some_and(|f| f.len() >= 3)
        })
        .expect("a family of three or more");
    let resident = sample.resident.as_ref().unwrap();
    let living: Vec<u64> = common::population()
        .family(&resident.kk)
        .unwrap()
        .into_iter()
        .filter(|m| m.status == simpul_warehouse::population::ResidentStatus::Alive)
        .map(|m| m.nik.as_u64())
        .collect();

    let by_nik = client.post_json(path, &bps(json!({"NIK": nik_of(&sample)}))).await;
    let by_kk = client.post_json(path, &bps(json!({"NO_KK": resident.kk.to_string()}))).await;
    let by_kk_number = client.post_json(path, &bps(json!({"no_kk": resident.kk.as_u64()}))).await;
    for reply in [&by_nik, &by_kk, &by_kk_number] {
        let content = reply.content();
        let niks: Vec<u64> = content.iter().map(|m| m["NIK"].as_u64().unwrap()).collect();
        assert_eq!(niks, living, "{}", reply.text());
        assert!(content.iter().all(|m| m["NO_KK"].as_u64() == Some(resident.kk.as_u64())));
        assert!(content.iter().all(|m| keys(m) == BPS_ELEMENTS));
        assert_eq!(reply.envelope().content.len(), living.len());
    }
    assert!(by_kk
        .text()
        .contains(&format!(r#""numberOfElements":{n},"sort":null,"totalElements":{n}"#, n = living.len())));

    client.post_json(path, &bps(json!({"NO_KK": "12"}))).await.assert_code("15");
    client.post_json(path, &bps(json!({}))).await.assert_code("07");
    client.post_json(path, &bps(json!({"NIK": nik_of(&samples(SampleKind::Unknown, 1)[0])}))).await.assert_code("13");
}

#[tokio::test]
async fn verification_answers_verdicts_only_and_honours_the_threshold() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let path = "/dukcapil/get_json/32-76/rsud_3276/CALL_VERIFY_BY_ELEMEN";
    let sample = &samples(SampleKind::Alive, 1)[0];
    let full = sample.to_json();
    let name = full["NAMA_LGKP"].as_str().unwrap().to_owned();
    let born = full["TGL_LHR"].as_str().unwrap();
    let (y, m, d) = (&born[0..4], &born[5..7], &born[8..10]);
    // One letter changed: similar, but not identical.
    let mut misspelt: Vec<char> = name.chars().collect();
    let last = misspelt.len() - 1;
    misspelt[last] = if misspelt[last] == 'X' { 'Y' } else { 'X' };
    let misspelt: String = misspelt.into_iter().collect();

    let body = |nama: &str, threshold: Option<&str>| {
        let mut body = rsud(json!({
            "NIK": nik_of(sample), "NAMA_LGKP": nama, "TGL_LHR": format!("{d}-{m}-{y}"), "TMPT_LHR": "KOTA ANTAH BERANTAH",
        }));
        if let Some(t) = threshold {
            body["TRESHOLD"] = json!(t);
        }
        body
    };
    let reply = client.post_json(path, &body(&name.to_lowercase(), None)).await;
    let content = reply.content();
    assert_eq!(content.len(), 1);
    let verdicts = &content[0];
    assert_eq!(keys(verdicts), ["NIK", "NAMA_LGKP", "TMPT_LHR", "TGL_LHR"], "{}", reply.text());
    assert_eq!(verdicts["NIK"], "Sesuai");
    assert_eq!(verdicts["NAMA_LGKP"], "Sesuai (100)");
    assert_eq!(verdicts["TGL_LHR"], "Sesuai");
    assert!(verdicts["TMPT_LHR"].as_str().unwrap().starts_with("Tidak Sesuai ("), "{verdicts:?}");
    assert!(!reply.text().contains(&name), "no record data in a verification answer");

    let strict = client.post_json(path, &body(&misspelt, Some("100"))).await.content();
    let lenient = client.post_json(path, &body(&misspelt, Some("50"))).await.content();
    assert!(strict[0]["NAMA_LGKP"].as_str().unwrap().starts_with("Tidak Sesuai ("), "{strict:?}");
    assert!(lenient[0]["NAMA_LGKP"].as_str().unwrap().starts_with("Sesuai ("), "{lenient:?}");

    // Claiming an element the agreement does not grant refuses the whole request.
    let probe = client.post_json(path, &rsud(json!({"NIK": nik_of(sample), "NAMA_LGKP_IBU": "SITI"}))).await;
    assert_eq!(probe.respon().as_deref(), Some("Parameter Tidak Lengkap / Tidak Valid"));
    let bps_path = "/dukcapil/get_json/BPS/CALL_VERIFY_BY_ELEMEN";
    client.post_json(bps_path, &bps(json!({"NIK": nik_of(sample), "ALAMAT": "JL. X"}))).await.assert_code("07");
    client.post_json(path, &body(&name, Some("101"))).await.respon().expect("a refusal");
    let dead = client
        .post_json(bps_path, &bps(json!({"NIK": nik_of(&samples(SampleKind::Deceased, 1)[0]), "NAMA_LGKP": "X"})))
        .await;
    dead.assert_code("11");
}

#[tokio::test]
async fn aggregate_counts_living_residents_by_region_sex_and_age_band() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let full = samples(SampleKind::Alive, 1)[0].to_json();
    let (prop, kab, kec) =
        (full["NO_PROP"].as_u64().unwrap(), full["NO_KAB"].as_u64().unwrap(), full["NO_KEC"].as_u64().unwrap());
    let path = "/dukcapil/get_json/BPS/CALL_AGREGAT";

    let province = client.post_json(path, &bps(json!({"NO_PROP": prop.to_string()}))).await.content();
    let regency = client
        .post_json("/dukcapil/get_json/BPS/agregat", &bps(json!({"NOMOR_PROP": prop, "NO_KAB": format!("{kab:02}")})))
        .await
        .content();
    let district = client
        .post_json(path, &bps(json!({"NO_PROP": prop, "NO_KAB": kab, "NO_KEC": format!("{kec:03}")})))
        .await
        .content();
    for rows in [&province, &regency, &district] {
        assert_eq!(rows.len(), 32, "two sexes by sixteen bands");
        assert!(rows.iter().all(|r| r["NO_PROP"].as_u64() == Some(prop) && r["JUMLAH"].is_u64()));
        assert_eq!(rows[0]["JENIS_KLMIN"], "Laki-Laki");
        assert_eq!(rows[16]["JENIS_KLMIN"], "Perempuan");
        assert_eq!(rows[0]["KELOMPOK_UMUR"], "0-4");
    }
    assert_eq!(keys(&province[0]), ["NO_PROP", "JENIS_KLMIN", "KELOMPOK_UMUR", "JUMLAH"]);
    assert_eq!(keys(&district[0]), ["NO_PROP", "NO_KAB", "NO_KEC", "JENIS_KLMIN", "KELOMPOK_UMUR", "JUMLAH"]);
    let total =
        |rows: &[serde_json::Map<String, Value>]| rows.iter().map(|r| r["JUMLAH"].as_u64().unwrap()).sum::<u64>();
    assert!(total(&district) >= 1, "the sampled resident lives there");
    assert!(total(&province) >= total(&regency) && total(&regency) >= total(&district));

    client.post_json(path, &bps(json!({"NO_KAB": kab}))).await.assert_code("07");
    client.post_json(path, &bps(json!({"NO_PROP": prop, "NO_KEC": kec}))).await.assert_code("07");
    client.post_json(path, &bps(json!({"NO_PROP": "xx"}))).await.assert_code("07");
    client.post_json(path, &bps(json!({"NO_PROP": 99}))).await.assert_code("13");
}

#[tokio::test]
async fn unknown_methods_are_07_and_unknown_consumers_and_paths_404_with_json() {
    let server = Server::start(&config()).await;
    let client = server.client();
    // The consumer exists, so a method name it does not know is a business error in its dialect, before the
    // credentials: the quota stays untold.
    let reply = client.post_json("/dukcapil/get_json/BPS/CALL_SEMUA", &bps(json!({}))).await;
    reply.assert_code("07");
    assert_eq!(reply.quota(), 0);
    let reply = client.post_json("/dukcapil/get_json/32-76/rsud_3276/cek_keluarga", &rsud(json!({}))).await;
    assert_eq!(
        (reply.status, reply.respon().as_deref()),
        (StatusCode::OK, Some("Parameter Tidak Lengkap / Tidak Valid")),
        "{}",
        reply.text()
    );
    assert_eq!(reply.quota(), 0);

    for path in [
        "/dukcapil/get_json/KEMENSOS/CALL_NIK",
        "/dukcapil/get_json/32-77/rsud_3276/call_nik",
        "/",
        "/dukcapil/get_json/x/y/z/w",
    ] {
        let reply = client.post_json(path, &bps(json!({}))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.code().as_deref(), Some("404"), "{path}: {}", reply.text());
    }
}

#[tokio::test]
async fn only_post_is_accepted() {
    let server = Server::start(&config()).await;
    let client = server.client();
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let reply = client.send(method.clone(), BPS, &[], "").await.unwrap();
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.headers["allow"], "POST");
        assert_eq!(reply.code().as_deref(), Some("405"));
    }
    let legacy = client.send(Method::GET, "/dukcapil/get_json/32-76/rsud_3276/call_nik", &[], "").await.unwrap();
    assert_eq!(legacy.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(legacy.respon().is_some(), "in the consumer's dialect: {}", legacy.text());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_at_the_limit_are_read() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);

    let huge = vec![b' '; 10 * 1024 * 1024];
    let reply = client.post(BPS, huge).await.expect("the 413 arrives despite the unread body");
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code().as_deref(), Some("413"));

    // Exactly 1 MiB, padded with spaces, is still a request.
    let body = bps(json!({"NIK": nik})).to_string();
    let padded = format!("{body}{}", " ".repeat(1024 * 1024 - body.len()));
    assert_eq!(padded.len(), 1024 * 1024);
    let reply = client.post(BPS, padded).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content()[0]["NIK"].as_u64(), Some(nik.parse().unwrap()));
}

#[tokio::test]
async fn bodies_that_are_not_json_or_have_wrong_types_are_07_before_authentication() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);
    let table: Vec<Vec<u8>> = vec![
        format!("user_id=bps&password=rahasia-bps&NIK={nik}").into_bytes(),
        b"{\"user_id\":\"bps\",".to_vec(),
        b"[1,2,3]".to_vec(),
        b"\"NIK\"".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        format!(r#"{{"user_id":"bps","password":"rahasia-bps","NIK":["{nik}"]}}"#).into_bytes(),
        format!(r#"{{"user_id":"bps","password":"rahasia-bps","NIK":{{"v":"{nik}"}}}}"#).into_bytes(),
        format!(r#"{{"user_id":"bps","password":true,"NIK":"{nik}"}}"#).into_bytes(),
        format!(r#"{{"user_id":"bps","password":"rahasia-bps","NIK":"{nik}","TRESHOLD":"tinggi"}}"#).into_bytes(),
    ];
    for body in table {
        let reply = client.post(BPS, body.clone()).await.unwrap();
        reply.assert_code("07");
        assert_eq!(
            reply.quota(),
            0,
            "nothing is spent or told before authentication: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let legacy = client.post("/dukcapil/get_json/32-76/rsud_3276/call_nik", "bukan json").await.unwrap();
    assert_eq!(legacy.respon().as_deref(), Some("Parameter Tidak Lengkap / Tidak Valid"));
}

#[tokio::test]
async fn field_client_shapes_are_accepted() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let sample = &samples(SampleKind::Alive, 1)[0];
    let nik = nik_of(sample);

    // Credentials and NIK in the query string, empty body.
    let query = format!("{BPS}?USER_ID=bps&PASSWORD=rahasia-bps&NIK={nik}");
    let reply = client.post(&query, "").await.unwrap();
    assert_eq!(reply.content()[0]["NIK"].as_u64(), Some(sample.nik.as_u64()), "{}", reply.text());

    // The malformed Content-Type, upper-case keys, the NIK as a JSON number, an unknown key, an IP claim.
    let body = format!(
        r#"{{"USER_ID":"bps","PASSWORD":"rahasia-bps","NIK":{nik},"IP_USER":"10.1.2.3","transactionId":"t-1"}}"#
    );
    let reply = client
        .send(Method::POST, BPS, &[("content-type", "application/json,Accept: application/json")], body)
        .await
        .unwrap();
    assert_eq!(reply.content()[0]["NIK"].as_u64(), Some(sample.nik.as_u64()), "{}", reply.text());
    // No Content-Type at all.
    let reply = client.send(Method::POST, BPS, &[], bps(json!({"nik": nik})).to_string()).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content()[0].contains_key("NAMA_LGKP"));

    // The IP claim is never trusted: claiming a registered address does not let a stranger in.
    let claim = json!({"user_id": "farc", "password": "pw", "NIK": nik, "ip_user": "10.9.9.9"});
    client.post_json("/dukcapil/get_json/FARC/CALL_NIK", &claim).await.assert_code("04");
}

#[tokio::test]
async fn a_keep_alive_connection_serves_many_requests() {
    let server = Server::start(&config()).await;
    let mut connection = server.client().connect().await.unwrap();
    let niks: Vec<String> = samples(SampleKind::Alive, 5).iter().map(nik_of).collect();
    for (i, nik) in niks.iter().enumerate() {
        let reply = connection.send(Method::POST, BPS, &[], bps(json!({"NIK": nik})).to_string()).await.unwrap();
        assert_eq!(reply.content()[0]["NIK"].as_u64(), Some(nik.parse().unwrap()));
        assert_eq!(reply.quota(), 999 - i as u64);
    }
}

#[tokio::test]
async fn unknown_elements_and_blank_values_are_ignored() {
    let server = Server::start(&config()).await;
    let client = server.client();
    let nik = nik_of(&samples(SampleKind::Alive, 1)[0]);
    let reply = client.post_json(BPS, &bps(json!({"NIK": format!(" {nik} "), "NO_RT": " ", "ELEMEN_BARU": 1}))).await;
    assert_eq!(reply.content()[0][Element::Nik.wire_name()].as_u64(), Some(nik.parse().unwrap()));
}

#[tokio::test]
async fn a_client_that_only_speaks_tls_1_2_is_refused() {
    let server = Server::start(&config()).await;
    let old = common::client_config(&server.cert, None, &[&rustls::version::TLS12]);
    let err = Client::with_config(server.addr, old).post(BPS, "{}").await.unwrap_err();
    assert!(format!("{err:#}").to_lowercase().contains("protocol"), "{err:#}");
}
