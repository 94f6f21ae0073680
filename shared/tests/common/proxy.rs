//! A TCP proxy in front of etcd whose link a test can cut (connections closed, new ones
//! refused) or blackhole (connections held open, nothing forwarded): a network failure
//! without touching etcd itself.

use std::net::SocketAddr;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward bytes both ways.
    Forward,
    /// Close every connection; accept new ones only to close them.
    Refuse,
    /// Keep connections open but forward nothing (a silently dead link).
    Blackhole,
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `target` (`host:port`).
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (mode, rx) = watch::channel(Mode::Forward);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(handle(inbound, target.clone(), rx.clone()));
            }
        });
        Proxy { addr, mode, task }
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Switches mode; existing connections follow at once.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut inbound: TcpStream, target: String, mut mode: watch::Receiver<Mode>) {
    let current = *mode.borrow_and_update();
    match current {
        Mode::Refuse => return,
        Mode::Blackhole => {
            let _ = mode.changed().await;
            return;
        }
        Mode::Forward => {}
    }
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        return;
    };
    let left_forward = async {
        loop {
            if mode.changed().await.is_err() {
                return;
            }
            if *mode.borrow_and_update() != Mode::Forward {
                return;
            }
        }
    };
    tokio::select! {
        _ = copy_bidirectional(&mut inbound, &mut outbound) => return,
        _ = left_forward => {}
    }
    if *mode.borrow() == Mode::Blackhole {
        // Hold both sockets open, silent, until the next change.
        let _ = mode.changed().await;
    }
    drop((inbound, outbound));
}
