//! A webhook receiver of the tests' own, for Alertmanager's notifications.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A webhook receiver on 127.0.0.1: every POST body (JSON) arrives on a channel.
pub struct Webhook {
    /// Where it listens: `http://127.0.0.1:<port>/`.
    pub url: String,
    received: mpsc::UnboundedReceiver<Value>,
    server: tokio::task::JoinHandle<()>,
}

impl Webhook {
    /// Starts listening.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        let (sender, received) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    if let Err(err) = serve_one(stream, &sender).await {
                        eprintln!("webhook: {err:#}");
                    }
                });
            }
        });
        Ok(Webhook {
            url,
            received,
            server,
        })
    }

    /// The next notification.
    pub async fn next(&mut self, limit: Duration) -> anyhow::Result<Value> {
        tokio::time::timeout(limit, self.received.recv())
            .await
            .with_context(|| {
                format!(
                    "no notification at {} within {} s",
                    self.url,
                    limit.as_secs()
                )
            })?
            .context("the webhook stopped")
    }

    /// Fails if a notification arrives within `period`.
    pub async fn nothing_for(&mut self, period: Duration) -> anyhow::Result<()> {
        match tokio::time::timeout(period, self.received.recv()).await {
            Ok(Some(notification)) => {
                bail!("unexpected notification at {}: {notification}", self.url)
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Reads one HTTP/1.1 request with a `Content-Length` body, answers 200 and closes.
async fn serve_one(
    mut stream: TcpStream,
    sender: &mpsc::UnboundedSender<Value>,
) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 8192];
    let body_start = loop {
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "connection closed within the headers");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .context("no content-length")?
        .trim()
        .parse()?;
    while buffer.len() < body_start + length {
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "connection closed within the body");
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buffer[body_start..body_start + length])?;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await?;
    stream.shutdown().await?;
    let _ = sender.send(body);
    Ok(())
}
