//! The tunnel's system tests' own helpers: a small HTTP responder and a bulk transfer through the tunnel. The
//! namespace helpers (prerequisites, `Netns`, the wireguard-go client, polling) come from simpul-integration's `netns`
//! module (a dev-dependency), shared with the tunnel benchmark and the gateway's system tests, and are re-exported
//! here.

// Each test file compiles its own copy of this module and uses only part of it.
#![allow(dead_code, unused_imports)]

use std::io;
use std::path::Path;

pub use simpul_integration::netns::{eventually, missing_prerequisite, stdout, wireguard_go, Netns};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The body size of `/big` and the largest `/upload` the responder takes.
pub const BIG: usize = 4 << 20;

/// The bytes `/big` sends: a pattern whose period (251) does not divide segment sizes, so misplaced data shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A tiny HTTP/1.1 responder: `/` answers `greeting` (who the server thinks the caller is), `/big` sends a known
/// pattern, `/upload` counts and sums what it receives.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, greeting: String) -> io::Result<()> {
    let mut request = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(pos) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if request.len() > 16 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = match path.as_str() {
        "/big" => pattern(BIG),
        "/upload" => {
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
                .min(BIG);
            let mut received = request[head_end..].to_vec();
            while received.len() < length {
                let mut chunk = vec![0u8; 64 * 1024];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&chunk[..n]);
            }
            let sum: u64 = received.iter().map(|&b| u64::from(b)).sum();
            format!("received={} sum={sum}\n", received.len()).into_bytes()
        }
        _ => format!("{greeting}\n").into_bytes(),
    };
    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// Downloads `/big` and uploads `BIG` random bytes through the tunnel with curl from `ns`, and checks both arrived
/// intact: many segments, windows filling and draining.
pub async fn bulk_both_ways(ns: &Netns, dir: &Path) {
    let big = ns.output(&["curl", "-sS", "--max-time", "30", "http://10.77.0.1:8000/big"]).await;
    assert!(big.status.success(), "curl /big: {}", String::from_utf8_lossy(&big.stderr));
    assert!(big.stdout == pattern(BIG), "downloaded {} bytes, not the pattern", big.stdout.len());
    let upload: Vec<u8> = (0..BIG).map(|_| rand::random()).collect();
    let upload_file = dir.join(format!("upload-{}.bin", ns.tag));
    std::fs::write(&upload_file, &upload).unwrap();
    let sum: u64 = upload.iter().map(|&b| u64::from(b)).sum();
    let data = format!("@{}", upload_file.display());
    let up =
        ns.output(&["curl", "-sS", "--max-time", "30", "--data-binary", &data, "http://10.77.0.1:8000/upload"]).await;
    assert!(up.status.success(), "curl /upload: {}", String::from_utf8_lossy(&up.stderr));
    assert_eq!(stdout(&up), format!("received={BIG} sum={sum}"));
}
