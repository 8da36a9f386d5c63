//! A TCP proxy whose connections stop moving bytes while it is paused (a network stall:
//! nothing is closed, nothing arrives): it holds an api between its commit and its answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub port: u16,
    paused: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards a free loopback port to `127.0.0.1:target`.
    pub async fn start(target: u16) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let paused = Arc::new(AtomicBool::new(false));
        let p = paused.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, p.clone()));
                tokio::spawn(pump(sr, cw, p.clone()));
            }
        });
        Ok(Proxy { port, paused })
    }

    pub fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::SeqCst);
    }
}

async fn wait_unpaused(paused: &AtomicBool) {
    while paused.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, paused: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        wait_unpaused(&paused).await;
        let n = match tokio::time::timeout(Duration::from_millis(20), from.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        // What was read just before a pause is held back too.
        wait_unpaused(&paused).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
