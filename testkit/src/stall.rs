//! A TCP proxy in front of a real server (Postgres, Redis) that forwards until told to
//! stall; from then on every connection, open or new, is read but never answered: a server
//! that hangs, as in an outage whose packets are dropped (nothing is refused, nothing
//! answers).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct StallProxy {
    /// The proxy's own address.
    pub addr: SocketAddr,
    stalled: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// `(host:port of url, url with its host:port replaced by addr)`; a missing port is
/// `default_port`.
fn split_authority(url: &str, default_port: u16) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    };
    (hostport, format!("{scheme}://{user}"), tail.to_owned())
}

impl StallProxy {
    /// A proxy in front of the server of `url` (e.g. `postgres://u@127.0.0.1:5432/db`), and
    /// the same URL pointing at the proxy.
    pub async fn for_url(url: &str, default_port: u16) -> (StallProxy, String) {
        let (upstream, head, tail) = split_authority(url, default_port);
        let proxy = StallProxy::start(upstream).await;
        let proxied = format!("{head}{}{tail}", proxy.addr);
        (proxy, proxied)
    }

    /// A proxy forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stall proxy");
        let addr = listener.local_addr().expect("proxy address");
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream.clone(), flag.clone()));
            }
        });
        StallProxy {
            addr,
            stalled,
            accept,
        }
    }

    /// From now on nothing is forwarded either way, on open and new connections alike.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

async fn serve(client: TcpStream, upstream: String, stalled: Arc<AtomicBool>) {
    let (mut cr, mut cw) = client.into_split();
    if stalled.load(Ordering::SeqCst) {
        // Accepted, read, never answered (the write half stays open: no EOF either).
        swallow(&mut cr).await;
        drop(cw);
        return;
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut sr, mut sw) = server.into_split();
    let up = pump(&mut cr, &mut sw, stalled.clone());
    let down = pump(&mut sr, &mut cw, stalled);
    tokio::join!(up, down);
}

/// Copies `from` to `to` until either closes; once stalled, reads are dropped.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn swallow(from: &mut tokio::net::tcp::OwnedReadHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_authority;

    #[test]
    fn urls_are_pointed_at_the_proxy() {
        let (up, head, tail) =
            split_authority("postgres://postgres@127.0.0.1:5432/ezp_t_1?x=1", 5432);
        assert_eq!(
            (up.as_str(), head.as_str(), tail.as_str()),
            ("127.0.0.1:5432", "postgres://postgres@", "/ezp_t_1?x=1")
        );
        let (up, head, tail) = split_authority("redis://127.0.0.1/0", 6379);
        assert_eq!(
            (up.as_str(), head.as_str(), tail.as_str()),
            ("127.0.0.1:6379", "redis://", "/0")
        );
    }
}
