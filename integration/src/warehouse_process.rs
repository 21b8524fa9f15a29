//! The real `simpul-warehouse` binary as a child process, for benchmarks and system tests.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A `simpul-warehouse serve --dev` process on a free loopback port; killed when dropped.
#[derive(Debug)]
pub struct WarehouseProcess {
    child: Child,
    bin: PathBuf,
    addr: SocketAddr,
    state: tempfile::TempDir,
    ready_after: Duration,
}

impl WarehouseProcess {
    pub fn start_dev(bin: &Path) -> Result<WarehouseProcess> {
        let addr = free_port()?;
        let state = tempfile::tempdir()?;
        let spawned = Instant::now();
        let child = Command::new(bin)
            .args(["serve", "--dev", "--listen", &addr.to_string(), "--state-dir"])
            .arg(state.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut process = WarehouseProcess { child, bin: bin.to_path_buf(), addr, state, ready_after: Duration::ZERO };
        process.wait_ready(Duration::from_secs(30))?;
        process.ready_after = spawned.elapsed();
        Ok(process)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the warehouse exited early: {status}");
            }
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            // Fine-grained, since the benchmark reports time to ready.
            std::thread::sleep(Duration::from_millis(2));
        }
        bail!("the warehouse did not listen on {} within {limit:?}", self.addr)
    }

    /// From spawning the process to its first accepted TCP connection.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// Resident memory now and at its peak, in KiB, from `/proc/PID/status` (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> Result<u64> {
            let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
            Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    pub fn call_nik_url(&self) -> String {
        format!("https://{}/dukcapil/get_json/DEV/CALL_NIK", self.addr)
    }

    /// The dev certificate the warehouse wrote into its state directory.
    pub fn cert_path(&self) -> PathBuf {
        self.state.path().join("tls/cert.pem")
    }

    /// NIKs of living residents of the dev population (seed 1), from `simpul-warehouse sample`.
    pub fn sample_niks(&self, count: usize) -> Result<Vec<String>> {
        let out = Command::new(&self.bin)
            .args(["sample", "--seed", "1", "--count", &count.to_string(), "--kind", "alive"])
            .output()?;
        if !out.status.success() {
            bail!("sample failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        String::from_utf8(out.stdout)?
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line)?;
                Ok(v["NIK"].to_string().trim_matches('"').to_owned())
            })
            .collect()
    }

    /// One real `CALL_NIK` answer, fetched with curl through the pinned dev certificate.
    pub fn call_nik_body(&self, nik: &str) -> Result<Vec<u8>> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(self.cert_path())
            .args(["-X", "POST", &self.call_nik_url(), "-d"])
            .arg(format!(r#"{{"user_id":"dev","password":"dev","NIK":"{nik}"}}"#))
            .output()?;
        if !out.status.success() {
            bail!("curl failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(out.stdout)
    }
}

impl Drop for WarehouseProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}
