//! Raw HTTP/1.1 over a TCP socket, for what a well-behaved client library will not send:
//! half a request line, oversized or countless headers, bytes that are not UTF-8.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as JSON (panics with the response when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// `host:port` of `http://host:port`.
pub fn authority(base: &str) -> &str {
    base.trim_start_matches("http://").trim_end_matches('/')
}

/// Sends `request` as given and reads one response (the hub closes after refusals;
/// otherwise it is read by `Content-Length`), within `limit`.
pub async fn exchange(base: &str, request: &[u8], limit: Duration) -> anyhow::Result<RawResponse> {
    tokio::time::timeout(limit, async {
        let mut stream = TcpStream::connect(authority(base)).await?;
        // The hub may answer and close before all of a large request is written.
        let _ = stream.write_all(request).await;
        read_response(&mut stream).await
    })
    .await?
}

/// Reads one response: the head, then `Content-Length` bytes (or up to the close).
pub async fn read_response(stream: &mut TcpStream) -> anyhow::Result<RawResponse> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let read = stream.read(&mut chunk).await?;
        anyhow::ensure!(
            read > 0,
            "connection closed before a response head: {:?}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    let response = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    let length: Option<usize> = response
        .header("content-length")
        .and_then(|v| v.parse().ok());
    loop {
        if length.is_some_and(|l| body.len() >= l) {
            break;
        }
        let read = stream.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Ok(RawResponse { body, ..response })
}
