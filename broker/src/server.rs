//! Starting and stopping a broker: [`Broker::start`] binds the listener, opens the data
//! directory and spawns the accept loop and housekeeping tasks; [`BrokerHandle::shutdown`]
//! stops them and flushes every log.

use crate::config::BrokerConfig;
use crate::connection;
use crate::error::{Error, Result};
use crate::state::BrokerState;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How often group session and rebalance timeouts are checked.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// Entry point of the embeddable broker.
#[derive(Debug)]
pub struct Broker;

/// A running broker. Dropping it without [`BrokerHandle::shutdown`] still signals every task to
/// stop, but does not wait for them or flush.
#[derive(Debug)]
pub struct BrokerHandle {
    addr: SocketAddr,
    data_dir: PathBuf,
    state: Arc<BrokerState>,
    /// Sending `true` (or dropping the sender) tells every task to stop.
    shutdown: watch::Sender<bool>,
    /// The accept loop, which itself waits for its connections before finishing.
    tasks: JoinSet<()>,
    /// Held (with an exclusive lock on `data_dir/.lock`) while the broker runs, so a second
    /// broker on the same directory fails to start instead of corrupting it.
    _lock: std::fs::File,
    /// Keeps a default temporary data directory alive until the handle goes away.
    _temp_dir: Option<tempfile::TempDir>,
}

impl Broker {
    /// Binds, recovers the data directory and starts serving. Returns once the listener accepts
    /// connections.
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle> {
        let (data_dir, temp_dir) = match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::storage(dir, e))?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("streams-broker-")
                    .tempdir()
                    .map_err(|e| Error::storage(std::env::temp_dir(), e))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let lock = lock_data_dir(&data_dir)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
        let host = config.advertised_host.clone().unwrap_or_else(|| {
            if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            }
        });
        let dir = data_dir.clone();
        let config_for_state = config.clone();
        // Recovery reads whole segment tails: keep it off the async workers.
        let state = tokio::task::spawn_blocking(move || {
            BrokerState::open(config_for_state, &dir, host, addr.port())
        })
        .await
        .expect("recovery task panicked")?;
        let state = Arc::new(state);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(listener, state.clone(), shutdown_rx.clone()));
        tasks.spawn(group_ticker(state.clone(), shutdown_rx.clone()));
        tasks.spawn(crate::txn::complete::run_sweep(
            state.clone(),
            shutdown_rx.clone(),
        ));
        tasks.spawn(crate::log::cleaner::run(state.clone(), shutdown_rx));
        tracing::info!(%addr, data_dir = %data_dir.display(), "broker started");
        Ok(BrokerHandle {
            addr,
            data_dir,
            state,
            shutdown,
            tasks,
            _lock: lock,
            _temp_dir: temp_dir,
        })
    }
}

impl BrokerHandle {
    /// `host:port` to give clients as `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("{}:{}", self.state.host, self.addr.port())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where this broker keeps its data.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops accepting, closes every connection after its current request, and flushes all logs
    /// to disk, with a producer-state snapshot per partition so the next start replays nothing.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "broker task failed");
            }
        }
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            for topic in state.topics.list() {
                for p in topic.partitions() {
                    p.lock_log()?.checkpoint()?;
                }
            }
            Ok::<_, Error>(())
        })
        .await
        .expect("flush task panicked")?;
        tracing::info!(addr = %self.addr, "broker stopped");
        Ok(())
    }
}

fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    use fs2::FileExt;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::storage(&path, e))?;
    file.try_lock_exclusive()
        .map_err(|_| Error::DataDirLocked {
            path: dir.to_path_buf(),
        })?;
    Ok(file)
}

/// Resolves once shutdown is requested (or the handle is gone). Returns `()` rather than the
/// watch guard, which is not `Send` and must not live inside a `select!`.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let for_connections = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection::serve(stream, peer, state.clone(), for_connections.clone()));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn group_ticker(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(GROUP_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => state.groups.tick(tokio::time::Instant::now()),
            _ = stopped(&mut shutdown) => break,
        }
    }
}
