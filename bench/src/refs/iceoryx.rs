//! iceoryx2 (the `iceoryx2` crate, its `ipc` service), the shared-memory
//! middleware a user would reach for instead: publish-subscribe throughput of
//! `u64` and of 64-byte messages (one publisher and one subscriber process,
//! busy-polling), a busy-polling ping-pong over two publish-subscribe
//! services, a busy-polling request-response round trip, and a round trip of
//! its events (notify / wait). Every service has a unique name and goes with
//! the last port and node that use it.

use std::time::{Duration, Instant};

use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::prelude::*;

use super::super::Res;
use super::super::proc::{ChildCtx, PEER_TIMEOUT, Session, Spawn, unique_name};
use super::{mmsgs, ns_per};
use crate::Ctx;
use crate::figures::{FUTEX_ROUND_TRIPS, SPIN_ROUND_TRIPS, SPSC_64B_MSGS, SPSC_U64_MSGS};

/// Samples a subscriber's buffer holds: as many as the shmprim ring's slots.
const BUFFER: usize = 4096;

fn err<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("iceoryx2 {what}: {e:?}")
}

/// iceoryx2's machine-wide files that a run made: its management segment in
/// `/dev/shm` (`iox2_*global_mgmt`) and its directory in `/tmp`. iceoryx2
/// keeps them for the next user; a run that made them removes them again
/// once no iceoryx2 node is left, so that the suite leaves nothing behind.
struct MachineFiles {
    shm_before: Vec<String>,
    dir_existed: bool,
}

const IOX_DIR: &str = "/tmp/iceoryx2";

fn iox_shm() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("iox2_") && n.ends_with("global_mgmt"))
        .collect()
}

impl MachineFiles {
    fn note() -> MachineFiles {
        MachineFiles {
            shm_before: iox_shm(),
            dir_existed: std::path::Path::new(IOX_DIR).exists(),
        }
    }
}

impl Drop for MachineFiles {
    fn drop(&mut self) {
        let nodes_left = std::fs::read_dir(format!("{IOX_DIR}/nodes"))
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if nodes_left {
            return;
        }
        for name in iox_shm() {
            if !self.shm_before.contains(&name) {
                let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
            }
        }
        if !self.dir_existed {
            // Only empty directories go: `remove_dir` refuses the others.
            for sub in ["nodes", "services"] {
                let _ = std::fs::remove_dir(format!("{IOX_DIR}/{sub}"));
            }
            let _ = std::fs::remove_dir(IOX_DIR);
        }
    }
}

fn node() -> Res<Node<ipc::Service>> {
    // iceoryx2 logs to the terminal, warning for instance that it runs
    // without a configuration file: only its errors may interleave with the
    // suite's table.
    set_log_level_from_env_or(LogLevel::Error);
    NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(err("node"))
}

fn service_name(name: &str) -> Res<ServiceName> {
    ServiceName::new(name).map_err(err("service name"))
}

/// A publish-subscribe service of `T` that delivers every sample: no
/// overflow, no history, a buffer of [`BUFFER`].
fn pubsub<T: std::fmt::Debug + ZeroCopySend + Copy + 'static>(
    node: &Node<ipc::Service>,
    name: &str,
) -> Res<iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, T, ()>> {
    node.service_builder(&service_name(name)?)
        .publish_subscribe::<T>()
        .enable_safe_overflow(false)
        .history_size(0)
        .subscriber_max_buffer_size(BUFFER)
        .open_or_create()
        .map_err(err("publish-subscribe service"))
}

fn stalled(t0: Instant) -> Res<()> {
    if t0.elapsed() > PEER_TIMEOUT {
        Err("the iceoryx2 peer stalled".into())
    } else {
        Ok(())
    }
}

// ------------------------------------------------------------ throughput

/// A 64-byte message carrying its number in its first word.
#[derive(Debug, Clone, Copy, ZeroCopySend)]
#[repr(C)]
pub(crate) struct Msg64 {
    n: u64,
    pad: [u64; 7],
}

/// A message of a throughput run: made from its number, and read back.
trait Numbered: std::fmt::Debug + ZeroCopySend + Copy + 'static {
    fn make(n: u64) -> Self;
    fn number(&self) -> u64;
}

impl Numbered for u64 {
    fn make(n: u64) -> u64 {
        n
    }
    fn number(&self) -> u64 {
        *self
    }
}

impl Numbered for Msg64 {
    fn make(n: u64) -> Msg64 {
        Msg64 { n, pad: [0; 7] }
    }
    fn number(&self) -> u64 {
        self.n
    }
}

/// Publish-subscribe of `n` messages of `T` (`wide`: the 64-byte one),
/// publisher in a child process, subscriber here busy-polling: Mmsg/s.
fn throughput<T: Numbered>(ctx: &Ctx, n: u64, wide: bool) -> Res<f64> {
    let n = ctx.n(n);
    let name = unique_name("iox2-tput");
    let _files = MachineFiles::note();
    let node = node()?;
    let svc = pubsub::<T>(&node, &name)?;
    let sub = svc
        .subscriber_builder()
        .buffer_size(BUFFER)
        .create()
        .map_err(err("subscriber"))?;
    let s = Session::start(vec![Spawn::pinned(
        "iox2-publisher",
        vec![name.clone(), n.to_string(), u8::from(wide).to_string()],
    )])?;
    let t0 = s.go();
    let (mut got, mut sum) = (0, 0u64);
    while got < n {
        match sub.receive().map_err(err("receive"))? {
            Some(m) => {
                sum = sum.wrapping_add(m.number());
                got += 1;
            }
            None => stalled(t0)?,
        }
    }
    let dt = t0.elapsed();
    s.finish()?;
    if sum != n * (n + 1) / 2 {
        return Err("iceoryx2 delivered a wrong sum".into());
    }
    Ok(mmsgs(dt, n))
}

/// Publishes 1..=n of `T` on `name`, retrying while the subscriber's buffer
/// is full.
fn publish<T: Numbered>(c: &ChildCtx, name: &str, n: u64) -> Res<()> {
    let node = node()?;
    let svc = pubsub::<T>(&node, name)?;
    let publ = svc
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .map_err(err("publisher"))?;
    c.ready()?;
    for i in 1..=n {
        publ.send_copy(T::make(i)).map_err(err("send"))?;
    }
    c.done();
    Ok(())
}

/// Child of [`throughput`].
pub(crate) fn publisher_child(c: &ChildCtx) -> Res<()> {
    let name = c.str_arg(0)?.to_owned();
    let n: u64 = c.arg(1)?;
    let wide: u8 = c.arg(2)?;
    if wide == 1 {
        publish::<Msg64>(c, &name, n)
    } else {
        publish::<u64>(c, &name, n)
    }
}

/// iceoryx2 publish-subscribe of `u64`s.
pub(crate) fn pubsub_u64(ctx: &Ctx) -> Res<f64> {
    throughput::<u64>(ctx, SPSC_U64_MSGS, false)
}

/// iceoryx2 publish-subscribe of 64-byte messages.
pub(crate) fn pubsub_64(ctx: &Ctx) -> Res<f64> {
    throughput::<Msg64>(ctx, SPSC_64B_MSGS, true)
}

// ------------------------------------------------------------ round trips

/// Busy-polling ping-pong over two publish-subscribe services of `u64`: the
/// parent publishes `i`, the child answers `i + 1`. ns per round trip.
pub(crate) fn pingpong(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPIN_ROUND_TRIPS);
    let (ping_name, pong_name) = (unique_name("iox2-ping"), unique_name("iox2-pong"));
    let _files = MachineFiles::note();
    let node = node()?;
    let ping = pubsub::<u64>(&node, &ping_name)?;
    let pong = pubsub::<u64>(&node, &pong_name)?;
    let publ = ping
        .publisher_builder()
        .create()
        .map_err(err("publisher"))?;
    let sub = pong
        .subscriber_builder()
        .buffer_size(BUFFER)
        .create()
        .map_err(err("subscriber"))?;
    let s = Session::start(vec![Spawn::pinned(
        "iox2-pong",
        vec![ping_name.clone(), pong_name.clone(), n.to_string()],
    )])?;
    let t0 = s.go();
    for i in 0..n {
        publ.send_copy(i).map_err(err("send"))?;
        loop {
            if let Some(v) = sub.receive().map_err(err("receive"))? {
                if *v != i + 1 {
                    return Err("wrong answer".into());
                }
                break;
            }
            stalled(t0)?;
        }
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`pingpong`].
pub(crate) fn pong_child(c: &ChildCtx) -> Res<()> {
    let (ping_name, pong_name) = (c.str_arg(0)?.to_owned(), c.str_arg(1)?.to_owned());
    let n: u64 = c.arg(2)?;
    let node = node()?;
    let ping = pubsub::<u64>(&node, &ping_name)?;
    let pong = pubsub::<u64>(&node, &pong_name)?;
    let sub = ping
        .subscriber_builder()
        .buffer_size(BUFFER)
        .create()
        .map_err(err("subscriber"))?;
    let publ = pong
        .publisher_builder()
        .create()
        .map_err(err("publisher"))?;
    c.ready()?;
    let t0 = Instant::now();
    let mut done = 0;
    while done < n {
        match sub.receive().map_err(err("receive"))? {
            Some(v) => {
                publ.send_copy(*v + 1).map_err(err("send"))?;
                done += 1;
            }
            None => stalled(t0)?,
        }
    }
    c.done();
    Ok(())
}

fn request_response(
    node: &Node<ipc::Service>,
    name: &str,
) -> Res<
    iceoryx2::service::port_factory::request_response::PortFactory<ipc::Service, u64, (), u64, ()>,
> {
    node.service_builder(&service_name(name)?)
        .request_response::<u64, u64>()
        .open_or_create()
        .map_err(err("request-response service"))
}

/// Busy-polling request-response: the parent (client) sends `i`, the child
/// (server) answers `i + 1`. ns per round trip.
pub(crate) fn request_rtt(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPIN_ROUND_TRIPS / 4);
    let name = unique_name("iox2-rr");
    let _files = MachineFiles::note();
    let node = node()?;
    let svc = request_response(&node, &name)?;
    let client = svc.client_builder().create().map_err(err("client"))?;
    let s = Session::start(vec![Spawn::pinned(
        "iox2-server",
        vec![name.clone(), n.to_string()],
    )])?;
    let t0 = s.go();
    for i in 0..n {
        let pending = client.send_copy(i).map_err(err("request"))?;
        loop {
            if let Some(v) = pending.receive().map_err(err("response"))? {
                if *v != i + 1 {
                    return Err("wrong answer".into());
                }
                break;
            }
            stalled(t0)?;
        }
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`request_rtt`]: answers `n` requests.
pub(crate) fn server_child(c: &ChildCtx) -> Res<()> {
    let name = c.str_arg(0)?.to_owned();
    let n: u64 = c.arg(1)?;
    let node = node()?;
    let svc = request_response(&node, &name)?;
    let server = svc.server_builder().create().map_err(err("server"))?;
    c.ready()?;
    let t0 = Instant::now();
    let mut done = 0;
    while done < n {
        match server.receive().map_err(err("receive"))? {
            Some(request) => {
                let v = *request + 1;
                request.send_copy(v).map_err(err("respond"))?;
                done += 1;
            }
            None => stalled(t0)?,
        }
    }
    c.done();
    Ok(())
}

fn event_service(
    node: &Node<ipc::Service>,
    name: &str,
) -> Res<iceoryx2::service::port_factory::event::PortFactory<ipc::Service>> {
    node.service_builder(&service_name(name)?)
        .event()
        .open_or_create()
        .map_err(err("event service"))
}

/// Waits up to the peer timeout for a notification on `listener`.
fn wait_event(listener: &iceoryx2::port::listener::Listener<ipc::Service>) -> Res<()> {
    let t0 = Instant::now();
    loop {
        let got = listener
            .timed_wait(|_| {}, Duration::from_millis(100))
            .map_err(err("wait"))?;
        if got > 0 {
            return Ok(());
        }
        stalled(t0)?;
    }
}

/// Two event services: the parent notifies `ping` and waits on `pong`, the
/// child the other way round. ns per round trip.
pub(crate) fn event_rtt(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(FUTEX_ROUND_TRIPS);
    let (ping_name, pong_name) = (unique_name("iox2-eping"), unique_name("iox2-epong"));
    let _files = MachineFiles::note();
    let node = node()?;
    let ping = event_service(&node, &ping_name)?;
    let pong = event_service(&node, &pong_name)?;
    let notifier = ping.notifier_builder().create().map_err(err("notifier"))?;
    let listener = pong.listener_builder().create().map_err(err("listener"))?;
    let s = Session::start(vec![Spawn::pinned(
        "iox2-event-pong",
        vec![ping_name.clone(), pong_name.clone(), n.to_string()],
    )])?;
    let t0 = s.go();
    for _ in 0..n {
        notifier.notify().map_err(err("notify"))?;
        wait_event(&listener)?;
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`event_rtt`].
pub(crate) fn event_pong_child(c: &ChildCtx) -> Res<()> {
    let (ping_name, pong_name) = (c.str_arg(0)?.to_owned(), c.str_arg(1)?.to_owned());
    let n: u64 = c.arg(2)?;
    let node = node()?;
    let ping = event_service(&node, &ping_name)?;
    let pong = event_service(&node, &pong_name)?;
    let listener = ping.listener_builder().create().map_err(err("listener"))?;
    let notifier = pong.notifier_builder().create().map_err(err("notifier"))?;
    c.ready()?;
    for _ in 0..n {
        wait_event(&listener)?;
        notifier.notify().map_err(err("notify"))?;
    }
    c.done();
    Ok(())
}
