//! A deliberately broken Patroni REST endpoint, for what a real Patroni cannot be made to do on
//! demand: malformed JSON, a huge or endless body, a hanging answer, a redirect, another
//! cluster's scope, two leaders at once, answers that disagree in a way only a race shows (a
//! `/cluster` whose figures are older than the members' own). Every request gets the same
//! misbehaviour, or the one for its path.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pgha_testkit::{HostilePatroni, Misbehaviour};
//! let endpoint = HostilePatroni::start(Misbehaviour::EndlessBody).await?;
//! // point a client at endpoint.url() and check it gives up in bounded time and memory
//! println!("{} bytes sent at most to one request", endpoint.most_bytes_per_connection());
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the endpoint misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misbehaviour {
    /// `200` with a body that is not JSON.
    MalformedJson,
    /// `200` announcing a 64 MiB body in `Content-Length`, then sending it.
    HugeBody,
    /// `200`, chunked, sending 64 KiB chunks forever.
    EndlessBody,
    /// `200` promising 4 KiB, sending 10 bytes, then nothing, never closing.
    StalledBody,
    /// Accepts the connection and never answers.
    Hang,
    /// `302` to the given URL.
    Redirect(String),
    /// `200` with this JSON body (another cluster's `/cluster`, two leaders…).
    Json(String),
    /// `200` with the JSON body given for the request's path (`/cluster`, `/patroni`…), `404`
    /// for any other path.
    JsonByPath(Vec<(String, String)>),
}

/// A running hostile endpoint; stopped on drop.
#[derive(Debug)]
pub struct HostilePatroni {
    url: String,
    sent: Arc<AtomicU64>,
    most: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for HostilePatroni {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostilePatroni {
    /// Starts the endpoint on a free loopback port.
    pub async fn start(misbehaviour: Misbehaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let sent = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let (total, max) = (sent.clone(), most.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (m, total, max) = (misbehaviour.clone(), total.clone(), max.clone());
                tokio::spawn(async move {
                    let this = AtomicU64::new(0);
                    let _ = serve(stream, &m, &this).await;
                    let n = this.load(Ordering::Relaxed);
                    total.fetch_add(n, Ordering::Relaxed);
                    max.fetch_max(n, Ordering::Relaxed);
                });
            }
        });
        Ok(Self { url, sent, most, task })
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Body bytes written to clients on connections that have ended, in all.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The most body bytes one ended connection took before the client hung up: a bound on
    /// what the client buffered for one answer (plus the kernel's socket buffers).
    pub fn most_bytes_per_connection(&self) -> u64 {
        self.most.load(Ordering::Relaxed)
    }
}

/// Reads a request's head; returns its path.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    Ok(head.split_whitespace().nth(1).unwrap_or_default().to_owned())
}

async fn write_json(stream: &mut TcpStream, status: &str, body: &str, counter: &AtomicU64) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    write_counted(stream, body.as_bytes(), counter).await
}

async fn write_counted(stream: &mut TcpStream, body: &[u8], counter: &AtomicU64) -> std::io::Result<()> {
    stream.write_all(body).await?;
    counter.fetch_add(body.len() as u64, Ordering::Relaxed);
    Ok(())
}

async fn serve(mut stream: TcpStream, m: &Misbehaviour, counter: &AtomicU64) -> std::io::Result<()> {
    let path = read_request(&mut stream).await?;
    let forever = Duration::from_secs(3600);
    match m {
        Misbehaviour::MalformedJson => {
            write_json(
                &mut stream,
                "200 OK",
                "{\"members\": [{\"name\": \"x\", \"role\": ",
                counter,
            )
            .await?
        }
        Misbehaviour::HugeBody => {
            let total = 64u64 << 20;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                write_counted(&mut stream, &chunk[..n], counter).await?;
                left -= n as u64;
            }
        }
        Misbehaviour::EndlessBody => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let data = vec![b' '; 64 * 1024];
            let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(b"\r\n");
            loop {
                stream.write_all(&chunk).await?;
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        Misbehaviour::StalledBody => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n")
                .await?;
            write_counted(&mut stream, b"{\"members\"", counter).await?;
            tokio::time::sleep(forever).await;
        }
        Misbehaviour::Hang => tokio::time::sleep(forever).await,
        Misbehaviour::Redirect(to) => {
            let head =
                format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
        }
        Misbehaviour::Json(body) => write_json(&mut stream, "200 OK", body, counter).await?,
        Misbehaviour::JsonByPath(routes) => match routes.iter().find(|(p, _)| *p == path) {
            Some((_, body)) => write_json(&mut stream, "200 OK", body, counter).await?,
            None => write_json(&mut stream, "404 Not Found", "{}", counter).await?,
        },
    }
    stream.flush().await
}
