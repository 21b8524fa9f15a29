//! Driving `wrk` (Debian's wrk 4.x) as the load generator, and reading its report.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

#[derive(Debug, Clone, PartialEq)]
pub struct Result {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Socket errors plus non-2xx/3xx answers.
    pub errors: u64,
}

pub fn version() -> anyhow::Result<String> {
    let out = Command::new("wrk").arg("-v").output().context("wrk not found: apt-get install wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.split_whitespace().nth(1).map(str::to_owned).context("wrk -v printed no version")
}

/// How a `CALL_NIK` script sends its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each connection sends its next request as soon as the last one is answered: the peak rate.
    Flat,
    /// Each connection waits a random time before each request (exponentially distributed, this mean in
    /// milliseconds, wrk's `delay()`), so that the connections together offer a steady rate with Poisson arrivals.
    MeanDelayMs(f64),
}

/// A Lua script that posts `CALL_NIK` for each NIK in turn with `user`'s credentials, as fast as answered.
pub fn call_nik_script(niks: &[String], user: &str, password: &str) -> anyhow::Result<tempfile::NamedTempFile> {
    call_nik_script_paced(niks, user, password, Pacing::Flat)
}

/// [`call_nik_script`], sending as `pacing` says.
pub fn call_nik_script_paced(
    niks: &[String],
    user: &str,
    password: &str,
    pacing: Pacing,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new().suffix(".lua").tempfile()?;
    let list: Vec<String> = niks.iter().map(|n| format!("\"{n}\"")).collect();
    write!(
        f,
        r#"local niks = {{{}}}
local i = 0
request = function()
  i = i + 1
  local body = '{{"user_id":"{user}","password":"{password}","NIK":"' .. niks[(i % #niks) + 1] .. '"}}'
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
"#,
        list.join(",")
    )?;
    match pacing {
        Pacing::Flat => {}
        // wrk takes whole milliseconds: rounding keeps the mean.
        Pacing::MeanDelayMs(mean) => write!(
            f,
            r#"delay = function()
  return math.floor(-math.log(1 - math.random()) * {mean} + 0.5)
end
"#
        )?,
    }
    f.flush()?;
    Ok(f)
}

pub fn run(url: &str, script: &Path, connections: usize, seconds: u64) -> anyhow::Result<Result> {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    parse(&text)
}

/// Reads wrk's text report (`Requests/sec:`, the `--latency` distribution, error lines).
pub fn parse(text: &str) -> anyhow::Result<Result> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut errors = 0u64;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["50%", v] => p50 = Some(duration_ms(v)?),
            ["99%", v] => p99 = Some(duration_ms(v)?),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                errors += rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>()
            }
            _ => {}
        }
    }
    Ok(Result {
        requests_per_second: rps.context("no Requests/sec in wrk's report")?,
        p50_ms: p50.context("no 50% latency (was --latency given?)")?,
        p99_ms: p99.context("no 99% latency")?,
        errors,
    })
}

fn duration_ms(v: &str) -> anyhow::Result<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).context("latency without unit")?);
    let n: f64 = num.parse()?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        other => bail!("unknown latency unit {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ https://127.0.0.1:8100/x
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  350.00us   9.80ms   88.00%
    Req/Sec    26.51k     1.10k   28.00k    80.00%
  Latency Distribution
     50%    1.15ms
     75%    1.30ms
     90%    1.55ms
     99%    2.40ms
  263791 requests in 10.00s, 120.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  26379.10
Transfer/sec:     12.05MB
";

    #[test]
    fn reads_a_wrk_report() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r, Result { requests_per_second: 26379.10, p50_ms: 1.15, p99_ms: 2.40, errors: 7 });
        assert_eq!(duration_ms("850.00us").unwrap(), 0.85);
        assert_eq!(duration_ms("1.50s").unwrap(), 1500.0);
        assert!(parse("Requests/sec: 1").is_err(), "a report without latencies is an error");
    }
}
