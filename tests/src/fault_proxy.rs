//! A fault-injecting HTTP proxy on loopback, between a store's S3 client and the S3
//! server: it forwards one request per client connection, and a [`Plan`] decides for each
//! request whether it goes through, fails with a 503, is dropped before the server sees
//! it, is dropped after the server acted on it (the reply is lost), or is slowed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and relay the reply.
    Pass,
    /// Reply `503 Slow Down` without forwarding.
    Unavailable,
    /// Close the connection without forwarding (the server never sees it).
    DropRequest,
    /// Forward it, then close the connection without relaying the reply (the server acted
    /// on it; the client cannot know).
    DropReply,
    /// Forward it after this many milliseconds.
    Delay(u64),
}

/// One fault applied: the request's number, method and path, and the fault.
pub type Applied = (u64, String, String, Fault);

/// Decides the fate of request number `n` (from 1), given its method and path.
pub type Plan = Box<dyn Fn(u64, &str, &str) -> Fault + Send + Sync>;

/// A running proxy; dropping it stops accepting connections.
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    /// Every fault applied: (request number, method, path, fault).
    pub log: Arc<Mutex<Vec<Applied>>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`) applying `plan`.
    pub fn start(upstream: &str, plan: Plan) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let plan: Arc<Plan> = Arc::new(plan);
        let upstream = upstream.to_string();
        let (s, r, l) = (stop.clone(), requests.clone(), log.clone());
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (plan, upstream, r, l) =
                        (plan.clone(), upstream.clone(), r.clone(), l.clone());
                    std::thread::spawn(move || {
                        let _ = serve(conn, &upstream, &plan, &r, &l);
                    });
                }
            })?;
        Ok(FaultProxy {
            addr,
            stop,
            requests,
            log,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }

    /// The faults applied so far (not counting [`Fault::Pass`]).
    pub fn faults(&self) -> Vec<Applied> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

/// Reads an HTTP/1.1 request (head and `Content-Length` body) from `c`.
fn read_request(c: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = c.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    // One request per connection: the upstream closes after its reply.
    let mut head_lines: Vec<&str> = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    head_lines.push("Connection: close");
    let new_head = format!("{}\r\n\r\n", head_lines.join("\r\n"));
    Ok(Some((new_head.into_bytes(), body)))
}

fn serve(
    mut c: TcpStream,
    upstream: &str,
    plan: &Plan,
    requests: &AtomicU64,
    log: &Mutex<Vec<Applied>>,
) -> std::io::Result<()> {
    let Some((head, body)) = read_request(&mut c)? else {
        return Ok(());
    };
    let n = requests.fetch_add(1, Ordering::AcqRel) + 1;
    let first = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let fault = plan(n, &method, &path);
    if fault != Fault::Pass {
        if let Ok(mut l) = log.lock() {
            l.push((n, method.clone(), path.clone(), fault));
        }
    }
    match fault {
        Fault::Unavailable => {
            let body = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";
            let reply = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Length: {}\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            c.write_all(reply.as_bytes())?;
            return c.shutdown(Shutdown::Both);
        }
        Fault::DropRequest => return c.shutdown(Shutdown::Both),
        Fault::Delay(ms) => std::thread::sleep(Duration::from_millis(ms)),
        Fault::Pass | Fault::DropReply => {}
    }
    let mut u = TcpStream::connect(upstream)?;
    u.write_all(&head)?;
    u.write_all(&body)?;
    let mut reply = Vec::new();
    u.read_to_end(&mut reply)?;
    if fault == Fault::DropReply {
        return c.shutdown(Shutdown::Both);
    }
    c.write_all(&reply)?;
    c.shutdown(Shutdown::Both)
}
