//! The network between the hub and a member cluster: a small TCP proxy per member link.
//!
//! In real life a member cluster is not on localhost. The test bed puts a [`LinkProxy`] between
//! the operator and each member's kube-apiserver: the operator's kubeconfig for that member points
//! at the proxy, and the proxy forwards to the apiserver, adding the one-way delay of a link to
//! another zone or region. Tests can cut the link (a partition), restore it, or reset every
//! connection (a network that drops its state).
//!
//! The proxy forwards bytes, nothing more: TLS passes through untouched, and since both ends are
//! on 127.0.0.1 the apiserver's serving certificate still verifies.
//!
//! What a cut does, precisely: every socket stays open, no byte is forwarded in either direction,
//! and new connections are accepted (the kernel completes the handshake) but not forwarded or
//! answered — a black hole. Bytes sent during a cut are held, as TCP would keep retransmitting
//! them through a short partition, and delivered when the link is restored; connections that were
//! open during the cut continue from where they stalled. To model a partition long enough for
//! the endpoints (or a middlebox) to give up, follow [`LinkProxy::cut`] with
//! [`LinkProxy::reset_connections`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::error::{Result, TestBedError};

/// The environment variable that sets the one-way delay of member links, in milliseconds.
pub const LINK_DELAY_ENV: &str = "STACKSMITH_TESTBED_LINK_DELAY_MS";

/// The one-way delay of a member link when [`LINK_DELAY_ENV`] is not set: a member cluster in
/// another zone or region.
pub const DEFAULT_LINK_DELAY: Duration = Duration::from_millis(20);

/// The most one read takes from a socket; one chunk of the pipeline.
const CHUNK_BYTES: usize = 16 * 1024;

/// How many chunks may be in flight in each direction of a connection (read, not yet delivered).
/// With [`CHUNK_BYTES`] that is 2 MiB per direction: enough that the delay does not limit
/// throughput in tests, bounded so that a slow reader pushes back on the sender as TCP would.
const PIPELINE_CHUNKS: usize = 128;

/// How long the accept loop backs off after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The conditions of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConditions {
    /// The one-way delay, applied in each direction: a round trip takes at least twice this.
    pub delay: Duration,
}

impl LinkConditions {
    /// A perfect link: no delay.
    pub const fn none() -> Self {
        LinkConditions {
            delay: Duration::ZERO,
        }
    }

    /// The conditions configured by the environment: [`LINK_DELAY_ENV`] (milliseconds, `0` for
    /// none), [`DEFAULT_LINK_DELAY`] when unset. Read it once, when the test bed starts.
    pub fn from_env() -> Result<Self> {
        let value = std::env::var_os(LINK_DELAY_ENV);
        let value = value.as_ref().map(|v| v.to_string_lossy());
        Self::from_delay_ms(value.as_deref())
    }

    /// Parses the value of [`LINK_DELAY_ENV`]; `None` (unset) gives the default.
    fn from_delay_ms(value: Option<&str>) -> Result<Self> {
        let delay = match value.map(str::trim) {
            None | Some("") => DEFAULT_LINK_DELAY,
            Some(ms) => ms
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|err| {
                    TestBedError::format(
                        format!("{LINK_DELAY_ENV}={ms:?} (one-way delay in milliseconds)"),
                        err,
                    )
                })?,
        };
        Ok(LinkConditions { delay })
    }
}

impl Default for LinkConditions {
    /// [`DEFAULT_LINK_DELAY`] each way; [`LinkConditions::from_env`] honours the environment.
    fn default() -> Self {
        LinkConditions {
            delay: DEFAULT_LINK_DELAY,
        }
    }
}

/// What the tests and the test bed change while the proxy runs; every connection watches it.
#[derive(Clone, Copy, Debug)]
struct Control {
    delay: Duration,
    cut: bool,
    /// Bumped by [`LinkProxy::reset_connections`]: connections accepted before close.
    generation: u64,
}

#[derive(Debug, Default)]
struct Counters {
    open: AtomicUsize,
    bytes: AtomicU64,
}

/// Counts a connection as open for as long as it lives (however its task ends).
struct OpenConnection(Arc<Counters>);

impl OpenConnection {
    fn new(counters: &Arc<Counters>) -> Self {
        counters.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(counters))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP proxy on 127.0.0.1 standing for the network between the hub and one member cluster.
///
/// Dropping it stops the accept loop and every connection (closing their sockets); the runtime
/// completes that at its next turn, so the port is free shortly after the drop, not during it.
#[derive(Debug)]
pub struct LinkProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    control: watch::Sender<Control>,
    counters: Arc<Counters>,
    accept_loop: AbortHandle,
}

impl LinkProxy {
    /// Listens on 127.0.0.1 on a free port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr, conditions: LinkConditions) -> Result<Self> {
        let action = || format!("start the link proxy to {upstream}");
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(TestBedError::io(action()))?;
        let addr = listener.local_addr().map_err(TestBedError::io(action()))?;
        let (control, _) = watch::channel(Control {
            delay: conditions.delay,
            cut: false,
            generation: 0,
        });
        let counters = Arc::new(Counters::default());
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            upstream,
            control.subscribe(),
            Arc::clone(&counters),
        ))
        .abort_handle();
        tracing::debug!(%addr, %upstream, delay_ms = conditions.delay.as_millis(), "link proxy started");
        Ok(LinkProxy {
            addr,
            upstream,
            control,
            counters,
            accept_loop,
        })
    }

    /// Where the proxy listens: what the kubeconfig for the member should point at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The current conditions.
    pub fn conditions(&self) -> LinkConditions {
        LinkConditions {
            delay: self.control.borrow().delay,
        }
    }

    /// Sets the one-way delay. Bytes read from now on are delivered no earlier than `delay` after
    /// they were read; bytes already in flight keep the delay they were read with (and never
    /// overtake each other).
    pub fn set_delay(&self, delay: Duration) {
        self.control.send_modify(|c| c.delay = delay);
    }

    /// Partitions the link: nothing is forwarded in either direction, every socket stays open,
    /// and new connections are accepted but neither forwarded nor answered. See the module
    /// documentation for what happens to the bytes held.
    pub fn cut(&self) {
        self.control.send_modify(|c| c.cut = true);
    }

    /// Ends a partition: forwarding resumes, on the connections that stalled and the ones
    /// accepted during the cut; the bytes held are delivered in order.
    pub fn restore(&self) {
        self.control.send_modify(|c| c.cut = false);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.control.borrow().cut
    }

    /// Closes every open connection with a reset (both towards the client and the upstream), as
    /// a network that dropped its state would. Connections accepted afterwards are unaffected,
    /// and are still black-holed if the link is cut.
    pub fn reset_connections(&self) {
        self.control
            .send_modify(|c| c.generation = c.generation.wrapping_add(1));
    }

    /// How many client connections are open (including ones stalled by a cut).
    pub fn open_connections(&self) -> usize {
        self.counters.open.load(Ordering::Relaxed)
    }

    /// How many bytes the proxy has delivered so far, both directions together.
    pub fn bytes_forwarded(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        // The accept loop owns the listener and, through its `JoinSet`, every connection task:
        // aborting it drops them all. (Dropping `control` also makes every connection close.)
        self.accept_loop.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    control: watch::Receiver<Control>,
    counters: Arc<Counters>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let open = OpenConnection::new(&counters);
                    connections.spawn(serve_connection(
                        client,
                        peer,
                        upstream,
                        control.clone(),
                        Arc::clone(&counters),
                        open,
                    ));
                }
                Err(err) => {
                    tracing::warn!(%upstream, error = %err, "link proxy: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client connection, from accept to close.
async fn serve_connection(
    mut client: TcpStream,
    peer: SocketAddr,
    upstream_addr: SocketAddr,
    control: watch::Receiver<Control>,
    counters: Arc<Counters>,
    _open: OpenConnection,
) {
    let generation = control.borrow().generation;
    let mut upstream = None;
    let outcome = tokio::select! {
        outcome = forward(&mut client, &mut upstream, upstream_addr, &control, &counters) => outcome,
        () = reset_signal(control.clone(), generation) => Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "link reset",
        )),
    };
    match outcome {
        Ok(()) => tracing::debug!(%peer, %upstream_addr, "link connection closed"),
        Err(err) => {
            tracing::debug!(%peer, %upstream_addr, error = %err, "link connection reset");
            // Close with RST rather than FIN, so that the other side learns of the failure as it
            // would from a real network. A zero linger does not block on close.
            for stream in std::iter::once(&client).chain(upstream.as_ref()) {
                let _ = stream.set_zero_linger();
            }
        }
    }
}

/// Completes when the connections accepted under `generation` are to be reset, or when the proxy
/// is gone.
async fn reset_signal(mut control: watch::Receiver<Control>, generation: u64) {
    let _ = control.wait_for(|c| c.generation != generation).await;
}

/// Connects to the upstream once the link is up, then forwards both directions until both have
/// ended (`Ok`) or either fails (`Err`: the caller resets both sides).
async fn forward(
    client: &mut TcpStream,
    upstream: &mut Option<TcpStream>,
    upstream_addr: SocketAddr,
    control: &watch::Receiver<Control>,
    counters: &Counters,
) -> io::Result<()> {
    // A connection accepted during a cut is not forwarded, not even its handshake.
    flowing(&mut control.clone()).await?;
    let upstream = match upstream {
        Some(stream) => stream,
        None => upstream.insert(TcpStream::connect(upstream_addr).await?),
    };
    // The delay is ours to add: no Nagle on top of it.
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    tokio::try_join!(
        pipe(client_read, upstream_write, control, counters),
        pipe(upstream_read, client_write, control, counters),
    )?;
    Ok(())
}

/// A chunk of one direction of a connection, on its way through the link.
struct Chunk {
    /// When it may be delivered.
    deliver_at: Instant,
    /// The bytes; `None` for the end of the stream (a FIN, forwarded as a half-close).
    bytes: Option<Vec<u8>>,
}

/// One direction of a connection: a reader stamping each chunk with its delivery time, and a
/// writer delivering the chunks in order at those times. The two run concurrently, so the delay
/// adds latency without limiting throughput.
async fn pipe(
    from: ReadHalf<'_>,
    to: WriteHalf<'_>,
    control: &watch::Receiver<Control>,
    counters: &Counters,
) -> io::Result<()> {
    let (chunks, in_flight) = mpsc::channel(PIPELINE_CHUNKS);
    tokio::try_join!(
        read_side(from, chunks, control.clone()),
        write_side(to, in_flight, control.clone(), counters),
    )?;
    Ok(())
}

async fn read_side(
    mut from: ReadHalf<'_>,
    chunks: mpsc::Sender<Chunk>,
    mut control: watch::Receiver<Control>,
) -> io::Result<()> {
    loop {
        // During a cut the bytes stay in the kernel's buffers, pushing back on the sender.
        flowing(&mut control).await?;
        let mut bytes = Vec::with_capacity(CHUNK_BYTES);
        let read = from.read_buf(&mut bytes).await?;
        let deliver_at = Instant::now() + control.borrow().delay;
        let end = read == 0;
        let chunk = Chunk {
            deliver_at,
            bytes: (!end).then_some(bytes),
        };
        if chunks.send(chunk).await.is_err() || end {
            // Either the stream ended, or the writer has stopped (and reports why).
            return Ok(());
        }
    }
}

async fn write_side(
    mut to: WriteHalf<'_>,
    mut in_flight: mpsc::Receiver<Chunk>,
    mut control: watch::Receiver<Control>,
    counters: &Counters,
) -> io::Result<()> {
    while let Some(chunk) = in_flight.recv().await {
        if chunk.deliver_at > Instant::now() {
            tokio::time::sleep_until(chunk.deliver_at).await;
        }
        flowing(&mut control).await?;
        match chunk.bytes {
            Some(bytes) => {
                to.write_all(&bytes).await?;
                counters.bytes.fetch_add(
                    u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
            }
            None => {
                to.shutdown().await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Waits while the link is cut; an error when the proxy is gone.
async fn flowing(control: &mut watch::Receiver<Control>) -> io::Result<()> {
    match control.wait_for(|c| !c.cut).await {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::other("link proxy stopped")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::time::timeout;

    /// A generous bound for things that should happen at once; only a sanity check.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A TCP echo server on 127.0.0.1 counting the connections it accepted.
    struct Echo {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Echo {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&accepted);
            let task = tokio::spawn(async move {
                let mut connections = JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(async move {
                        let (mut read, mut write) = stream.into_split();
                        let _ = tokio::io::copy(&mut read, &mut write).await;
                        let _ = write.shutdown().await;
                    });
                }
            });
            Echo {
                addr,
                accepted,
                task,
            }
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    impl Drop for Echo {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn delay(ms: u64) -> LinkConditions {
        LinkConditions {
            delay: Duration::from_millis(ms),
        }
    }

    /// Sends `message` and reads the same number of bytes back; the time it took.
    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
        let started = Instant::now();
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0; message.len()];
        timeout(PATIENCE, stream.read_exact(&mut echoed))
            .await
            .expect("no answer in time")
            .unwrap();
        assert_eq!(echoed, message);
        started.elapsed()
    }

    /// Whether nothing at all (no byte, no EOF, no error) arrives within `window`.
    async fn silent_for(stream: &mut TcpStream, window: Duration) -> bool {
        let mut buf = [0u8; 64];
        timeout(window, stream.read(&mut buf)).await.is_err()
    }

    /// Whether the stream is closed (EOF or reset) within [`PATIENCE`].
    async fn closes(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match timeout(PATIENCE, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn delay_from_the_environment_value() {
        assert_eq!(
            LinkConditions::from_delay_ms(None).unwrap().delay,
            DEFAULT_LINK_DELAY
        );
        assert_eq!(DEFAULT_LINK_DELAY, Duration::from_millis(20));
        assert_eq!(
            LinkConditions::from_delay_ms(Some("")).unwrap(),
            LinkConditions::default()
        );
        assert_eq!(
            LinkConditions::from_delay_ms(Some("0")).unwrap(),
            LinkConditions::none()
        );
        assert_eq!(
            LinkConditions::from_delay_ms(Some(" 150 ")).unwrap().delay,
            Duration::from_millis(150)
        );
        let err = LinkConditions::from_delay_ms(Some("20ms")).unwrap_err();
        assert!(err.to_string().contains(LINK_DELAY_ENV), "{err}");
    }

    #[tokio::test]
    async fn bytes_arrive_intact_and_in_order_through_a_pipeline() {
        let echo = Echo::start().await;
        // 1 MiB is at least 64 reads of 16 KiB each way: sleeping 100 ms per read would take
        // over 6 s per direction, a pipeline takes a little more than the 200 ms round trip.
        let proxy = LinkProxy::start(echo.addr, delay(100)).await.unwrap();
        const LEN: usize = 1024 * 1024;
        let sent: Vec<u8> = (0..LEN)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect();

        let started = Instant::now();
        let stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            write.write_all(&to_send).await.unwrap();
            // The half-close travels through the proxy and the echo server back to us.
            write.shutdown().await.unwrap();
        });
        let mut received = Vec::with_capacity(LEN);
        timeout(PATIENCE, read.read_to_end(&mut received))
            .await
            .expect("the echo did not end in time")
            .unwrap();
        let elapsed = started.elapsed();
        writer.await.unwrap();

        assert_eq!(received.len(), LEN);
        assert!(received == sent, "the bytes came back altered or reordered");
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(
            elapsed < Duration::from_secs(5),
            "not pipelined? {elapsed:?}"
        );
        eventually("every byte counted", || {
            proxy.bytes_forwarded() == 2 * LEN as u64
        })
        .await;
        eventually("the connection closed", || proxy.open_connections() == 0).await;
    }

    #[tokio::test]
    async fn the_delay_applies_in_each_direction() {
        let echo = Echo::start().await;
        let proxy = LinkProxy::start(echo.addr, delay(50)).await.unwrap();
        assert_eq!(proxy.conditions(), delay(50));
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();

        let rtt = round_trip(&mut stream, b"ping").await;
        assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
        assert!(rtt < PATIENCE, "{rtt:?}");

        proxy.set_delay(Duration::from_millis(150));
        let rtt = round_trip(&mut stream, b"pong").await;
        assert!(rtt >= Duration::from_millis(300), "{rtt:?}");

        proxy.set_delay(Duration::ZERO);
        let rtt = round_trip(&mut stream, b"pang").await;
        assert!(rtt < PATIENCE, "{rtt:?}");
    }

    #[tokio::test]
    async fn a_cut_is_a_black_hole_until_restored() {
        let echo = Echo::start().await;
        let proxy = LinkProxy::start(echo.addr, LinkConditions::none())
            .await
            .unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut open, b"before").await;
        assert_eq!(echo.accepted(), 1);

        proxy.cut();
        assert!(proxy.is_cut());
        let forwarded = proxy.bytes_forwarded();
        open.write_all(b"during").await.unwrap();
        // A new connection is accepted, but nothing reaches the upstream and nothing answers.
        let mut fresh = timeout(PATIENCE, TcpStream::connect(proxy.addr()))
            .await
            .expect("connecting during a cut hung")
            .unwrap();
        fresh.write_all(b"hello?").await.unwrap();
        let window = Duration::from_millis(500);
        let (open_silent, fresh_silent) = tokio::join!(
            silent_for(&mut open, window),
            silent_for(&mut fresh, window)
        );
        // No answer, but no EOF or reset either: the sockets stay open.
        assert!(
            open_silent,
            "an open connection got something during the cut"
        );
        assert!(
            fresh_silent,
            "a new connection got something during the cut"
        );
        assert_eq!(echo.accepted(), 1, "a connection reached the upstream");
        assert_eq!(proxy.bytes_forwarded(), forwarded);
        assert_eq!(proxy.open_connections(), 2);

        proxy.restore();
        assert!(!proxy.is_cut());
        // What was held is delivered, and both connections carry on.
        let mut held = [0u8; 6];
        timeout(PATIENCE, open.read_exact(&mut held))
            .await
            .expect("the held bytes did not arrive")
            .unwrap();
        assert_eq!(&held, b"during");
        timeout(PATIENCE, fresh.read_exact(&mut held))
            .await
            .expect("the new connection's bytes did not arrive")
            .unwrap();
        assert_eq!(&held, b"hello?");
        round_trip(&mut open, b"after").await;
        round_trip(&mut fresh, b"after").await;
        assert_eq!(echo.accepted(), 2);
    }

    #[tokio::test]
    async fn reset_closes_every_connection() {
        let echo = Echo::start().await;
        let proxy = LinkProxy::start(echo.addr, LinkConditions::none())
            .await
            .unwrap();
        let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut first, b"one").await;
        round_trip(&mut second, b"two").await;
        assert_eq!(proxy.open_connections(), 2);

        proxy.reset_connections();
        assert!(closes(&mut first).await, "the first connection stayed open");
        assert!(
            closes(&mut second).await,
            "the second connection stayed open"
        );
        eventually("no open connection", || proxy.open_connections() == 0).await;

        // The link itself still works.
        let mut third = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut third, b"three").await;
        assert_eq!(proxy.open_connections(), 1);
    }

    #[tokio::test]
    async fn reset_during_a_cut_closes_the_stalled_connections() {
        let echo = Echo::start().await;
        let proxy = LinkProxy::start(echo.addr, LinkConditions::none())
            .await
            .unwrap();
        let mut stalled = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut stalled, b"x").await;
        proxy.cut();
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        eventually("both connections accepted", || {
            proxy.open_connections() == 2
        })
        .await;
        proxy.reset_connections();
        assert!(closes(&mut stalled).await);
        assert!(closes(&mut fresh).await);
        eventually("no open connection", || proxy.open_connections() == 0).await;
    }

    #[tokio::test]
    async fn an_unreachable_upstream_closes_the_connection() {
        let nothing = crate::process::free_port().unwrap();
        let proxy = LinkProxy::start(
            SocketAddr::from(([127, 0, 0, 1], nothing)),
            LinkConditions::none(),
        )
        .await
        .unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(closes(&mut stream).await);
        eventually("no open connection", || proxy.open_connections() == 0).await;
    }

    #[tokio::test]
    async fn drop_stops_everything() {
        let echo = Echo::start().await;
        let proxy = LinkProxy::start(echo.addr, delay(5)).await.unwrap();
        let addr = proxy.addr();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut stream, b"alive").await;

        drop(proxy);
        assert!(closes(&mut stream).await, "a connection outlived the proxy");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "the proxy still listens");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The port is free again.
        TcpListener::bind(addr).await.unwrap();
    }
}
