//! A TCP link in front of a service (etcd) that a test can break without touching the
//! service itself, so the test can keep writing to it meanwhile: take the link down
//! ([`Mode::Refuse`]: connections closed, new ones refused, as when the network fails),
//! blackhole it ([`Mode::Blackhole`]: connections held open, nothing forwarded, a silently
//! dead link), or cut the open connections ([`Link::cut`], as when a peer drops an
//! unresponsive client) while new ones are still forwarded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the link does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward bytes both ways.
    Forward,
    /// Close every connection; accept new ones only to close them.
    Refuse,
    /// Keep connections open but forward nothing (a silently dead link).
    Blackhole,
}

/// The mode, and which "epoch" of connections may live.
#[derive(Clone, Copy, PartialEq, Eq)]
struct State {
    mode: Mode,
    epoch: u64,
}

/// A running link; dropping it stops it and closes its connections.
pub struct Link {
    port: u16,
    state: watch::Sender<State>,
    /// Connections being served now.
    live: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Link {
    /// Starts a link on a free loopback port forwarding to `target` (`host:port`). Needs a
    /// Tokio runtime (the connections are served by tasks of the test's runtime).
    pub async fn start(target: String) -> Link {
        let mut bound = None;
        for _ in 0..10 {
            let port = crate::free_port();
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
                bound = Some((port, listener));
                break;
            }
        }
        let (port, listener) = bound.expect("bind link");
        let (state, rx) = watch::channel(State {
            mode: Mode::Forward,
            epoch: 0,
        });
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
                        serve(inbound, target, rx).await;
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

    /// Switches mode; existing connections follow at once (those that were forwarded are
    /// closed, or held silent for [`Mode::Blackhole`] until the next change).
    pub fn set(&self, mode: Mode) {
        self.state.send_modify(|s| {
            s.mode = mode;
            s.epoch += 1;
        });
    }

    /// Takes the link down (`false`: [`Mode::Refuse`]) or up again (`true`:
    /// [`Mode::Forward`]).
    pub fn set_up(&self, up: bool) {
        self.set(if up { Mode::Forward } else { Mode::Refuse });
    }

    /// Closes every open connection and waits (bounded) until they are closed; new ones are
    /// served as the mode says. Meant for clients that do not reconnect meanwhile (e.g. a
    /// paused process).
    pub async fn cut(&self) {
        self.state.send_modify(|s| s.epoch += 1);
        crate::wait_until("the link's connections to close", crate::WAIT, || async {
            (self.live.load(Ordering::SeqCst) == 0).then_some(())
        })
        .await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
        self.set_up(false);
    }
}

async fn serve(mut inbound: TcpStream, target: String, mut state: watch::Receiver<State>) {
    let start = *state.borrow_and_update();
    match start.mode {
        Mode::Refuse => return,
        Mode::Blackhole => {
            let _ = state.changed().await;
            return;
        }
        Mode::Forward => {}
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
        _ = copy_bidirectional(&mut inbound, &mut outbound) => return,
        _ = ended => {}
    }
    if state.borrow().mode == Mode::Blackhole {
        // Hold both sockets open, silent, until the next change.
        let _ = state.changed().await;
    }
}
