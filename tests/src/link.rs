//! A TCP link in front of a service (etcd) that a test can break: cut the open connections
//! (as when a peer drops an unresponsive client), or take the link down (connections closed
//! and new ones refused, as when the network fails) without touching the service itself, so
//! a test can keep writing to etcd meanwhile.
//!
//! Adapted from `shared/tests/common/proxy.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Whether the link forwards, and which "epoch" of connections may live.
#[derive(Clone, Copy, PartialEq, Eq)]
struct State {
    up: bool,
    epoch: u64,
}

/// A running link; dropping it stops it and closes its connections.
pub struct Link {
    port: u16,
    state: watch::Sender<State>,
    /// Connections being forwarded now.
    live: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Link {
    /// Starts a link on a free loopback port forwarding to `target` (`host:port`). Needs a
    /// Tokio runtime (the connections are served by tasks of the test's runtime).
    pub async fn start(target: String) -> Link {
        let port = crate::free_port();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind link");
        let (state, rx) = watch::channel(State { up: true, epoch: 0 });
        let live = Arc::new(AtomicUsize::new(0));
        let task = {
            let live = live.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    let live = live.clone();
                    let rx = rx.clone();
                    let target = target.clone();
                    tokio::spawn(async move {
                        live.fetch_add(1, Ordering::SeqCst);
                        forward(inbound, target, rx).await;
                        live.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Link {
            port,
            state,
            live,
            task,
        }
    }

    /// `127.0.0.1:<port>`: where clients connect.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every open connection and waits (bounded) until they are closed; new ones are
    /// forwarded (if the link is up). Meant for clients that do not reconnect meanwhile
    /// (e.g. a paused process).
    pub async fn cut(&self) {
        self.state.send_modify(|s| s.epoch += 1);
        crate::wait_until("the link's connections to close", crate::WAIT, || async {
            (self.live.load(Ordering::SeqCst) == 0).then_some(())
        })
        .await;
    }

    /// Takes the link down (`false`: open connections closed, new ones closed at once) or
    /// up again (`true`).
    pub fn set_up(&self, up: bool) {
        self.state.send_modify(|s| {
            s.up = up;
            s.epoch += 1;
        });
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
        self.set_up(false);
    }
}

async fn forward(mut inbound: TcpStream, target: String, mut state: watch::Receiver<State>) {
    let start = *state.borrow_and_update();
    if !start.up {
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        return;
    };
    let ended = async {
        loop {
            if state.changed().await.is_err() || *state.borrow_and_update() != start {
                return;
            }
        }
    };
    tokio::select! {
        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = ended => {}
    }
}
