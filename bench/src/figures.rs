//! The registry of figures: what is measured, against which references, with
//! which goals, and the sizes every implementation of
//! a figure must use so that they measure the same thing.
//!
//! A figure whose `shmprim` is `None` is waiting for a primitive; its `hook`
//! names it, and a one-line comment says what to plug in. Its references still
//! run, and the table shows shmprim as `n/a`.

use super::refs::{
    atomics, boost, c_ring, iceoryx, os_ipc, pingpong, pool, pthread, python, raw_sync_mutex,
    threads,
};
use super::{Figure, Goal, Impl, Unit, object_side, pool_side, shmprim_side};
use crate::refs::always;

/// Slots of every SPSC ring of `u64` (C ring, rtrb, crossbeam, shmprim).
pub const SPSC_U64_CAPACITY: u64 = 4096;
/// Slots of every SPSC ring of byte messages (64 B and 4 KiB).
pub const SPSC_BYTES_CAPACITY: u64 = 256;
/// Slots of every MPMC queue.
pub const MPMC_CAPACITY: u64 = 1024;

/// Messages per SPSC `u64` run (an eighth with `--quick`).
pub const SPSC_U64_MSGS: u64 = 8_000_000;
/// Messages per SPSC 64-byte run.
pub const SPSC_64B_MSGS: u64 = 4_000_000;
/// Messages per SPSC 4-KiB run.
pub const SPSC_4K_MSGS: u64 = 400_000;
/// Messages per MPMC run (all producers together). Long enough (100 to 200
/// ms) for the scheduler to spread the participants over the cores: in
/// rounds of 1.6 M messages (25 to 40 ms), processes and threads alike
/// mostly stayed where they were started, often three on one core and one
/// on the other, for the whole round (BENCHMARKS.md).
pub const MPMC_MSGS: u64 = 8_000_000;
/// Round trips per busy-polling ping-pong run.
pub const SPIN_ROUND_TRIPS: u64 = 400_000;
/// Round trips per sleeping ping-pong run (futex, Event, shmprim::wait).
pub const FUTEX_ROUND_TRIPS: u64 = 40_000;
/// Round trips per blocking-queue run (futex, pipe, socket, mq, Queue).
pub const QUEUE_ROUND_TRIPS: u64 = 40_000;
/// Messages per `ObjectQueue` / `ByteQueue` throughput run (a hundredth of
/// them for Python's `multiprocessing.Queue`).
pub const OBJECT_MSGS: u64 = 400_000;
/// Round trips per Python `multiprocessing.Queue` run.
pub const PYTHON_ROUND_TRIPS: u64 = 4_000;
/// Round trips per semaphore run.
pub const SEM_ROUND_TRIPS: u64 = 40_000;
/// Rounds per barrier run.
pub const BARRIER_ROUNDS: u64 = 40_000;
/// Lock+unlock pairs per uncontended mutex run.
pub const MUTEX_UNCONTENDED_OPS: u64 = 8_000_000;
/// Lock+unlock pairs per process per contended mutex run.
pub const MUTEX_CONTENDED_OPS: u64 = 400_000;
/// Operations per `Value` run.
pub const VALUE_OPS: u64 = 8_000_000;
/// Workers of every process pool (shmprim's, Python's, the thread pool).
pub const POOL_WORKERS: usize = 2;
/// Tasks per `map` run with chunksize 1 (20 times as many with the default
/// chunksize).
pub const POOL_TASKS: u64 = 400_000;
/// Tasks per Python `Pool.map` run with chunksize 1 (a quarter for
/// `ProcessPoolExecutor`, 40 times as many with the default chunksize).
pub const POOL_PYTHON_TASKS: u64 = 20_000;
/// Processes started and joined per run.
pub const PROCESS_STARTS: u64 = 200;

/// A throughput figure of `ObjectQueue<String>`: the floor is a `ByteQueue`
/// of the same bytes (at least half its speed), the peer Python's
/// `multiprocessing.Queue` of the same strings (at least 100 times its
/// speed).
fn object_figure(
    id: &'static str,
    title: &'static str,
    run: super::Runner,
    floor: super::Runner,
    python_run: super::Runner,
) -> Figure {
    Figure {
        id,
        group: "object",
        title,
        unit: Unit::Mmsgs,
        shmprim: Some(Impl {
            name: "ObjectQueue<String>, blocking put / get",
            run,
            goal: None,
            available: always,
        }),
        hook: "ObjectQueue<String>",
        references: vec![
            reference(
                "ByteQueue of the same bytes",
                floor,
                Some(Goal::RatioAtLeast(0.5)),
            ),
            Impl {
                name: "Python multiprocessing.Queue of str",
                run: python_run,
                goal: Some(Goal::RatioAtLeast(100.0)),
                available: python::available,
            },
        ],
    }
}

/// A Boost.Interprocess reference: skipped, saying why, when the suite was
/// built without Boost's headers.
fn boost_ref(name: &'static str, run: super::Runner, goal: Option<Goal>) -> Impl {
    Impl {
        name,
        run,
        goal,
        available: boost::available,
    }
}

fn reference(name: &'static str, run: super::Runner, goal: Option<Goal>) -> Impl {
    Impl {
        name,
        run,
        goal,
        available: always,
    }
}

/// Every figure of the suite, in table order.
pub fn figures() -> Vec<Figure> {
    let c_ring = |run| {
        reference(
            "C ring, cached idx (2 procs)",
            run,
            Some(Goal::RatioAtLeast(0.9)),
        )
    };
    let rtrb = |run| reference("rtrb (2 threads)", run, Some(Goal::RatioAtLeast(1.0)));
    let xbeam_spsc = |run| {
        reference(
            "crossbeam ArrayQueue (2 threads)",
            run,
            Some(Goal::RatioAtLeast(1.0)),
        )
    };
    let bare_futex = |goal| reference("bare futex ping-pong (2 procs)", pingpong::futex, goal);
    vec![
        // ---- SPSC throughput ----
        Figure {
            id: "spsc-u64",
            group: "spsc",
            title: "SPSC ring throughput, u64 messages, producer and consumer in 2 processes",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "SpscRing<u64>, try_push / try_pop one at a time, spinning",
                run: shmprim_side::spsc_u64,
                goal: None,
                available: always,
            }),
            hook: "SpscRing<u64>",
            references: vec![
                c_ring(c_ring::u64s),
                rtrb(threads::rtrb_u64),
                xbeam_spsc(threads::crossbeam_u64),
                reference(
                    "iceoryx2 publish-subscribe (2 procs)",
                    iceoryx::pubsub_u64,
                    Some(Goal::RatioAtLeast(1.0)),
                ),
            ],
        },
        Figure {
            id: "spsc-u64-c-abi",
            group: "spsc",
            title: "SPSC ring throughput through the C ABI, u64 messages, 2 processes",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "shmprim_spsc_push / shmprim_spsc_pop, one element per call, try once, spinning",
                run: shmprim_side::spsc_u64_c_abi,
                goal: None,
                available: always,
            }),
            hook: "shmprim_spsc_*",
            references: vec![reference(
                "C ring, cached idx (2 procs)",
                c_ring::u64s,
                None,
            )],
        },
        Figure {
            id: "spsc-u64-c-abi-batch",
            group: "spsc",
            title: "SPSC ring throughput through the C ABI in batches, u64 messages, 2 processes",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "shmprim_spsc_push_many / _pop_many, up to 64 elements per call, spinning",
                run: shmprim_side::spsc_u64_c_abi_batch,
                goal: None,
                available: always,
            }),
            hook: "shmprim_spsc_*",
            references: vec![reference(
                "C ring, cached idx (2 procs)",
                c_ring::u64s,
                None,
            )],
        },
        Figure {
            id: "spsc-bytes-64",
            group: "spsc",
            title: "SPSC ring throughput, 64-byte messages, 2 processes",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "SpscByteRing (16 KiB), try_send / try_recv_into, spinning",
                run: shmprim_side::spsc_bytes_64,
                goal: None,
                available: always,
            }),
            hook: "SpscByteRing",
            references: vec![
                reference("C ring, cached idx (2 procs)", c_ring::bytes64, None),
                reference("rtrb [u8; 64] (2 threads)", threads::rtrb_64b, None),
                reference(
                    "crossbeam [u8; 64] (2 threads)",
                    threads::crossbeam_64b,
                    None,
                ),
                reference(
                    "iceoryx2 publish-subscribe, 64 bytes (2 procs)",
                    iceoryx::pubsub_64,
                    None,
                ),
            ],
        },
        Figure {
            id: "spsc-bytes-4k",
            group: "spsc",
            title: "SPSC ring throughput, 4-KiB messages, 2 processes",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "SpscByteRing (1 MiB), try_send / try_recv_into, spinning",
                run: shmprim_side::spsc_bytes_4k,
                goal: None,
                available: always,
            }),
            hook: "SpscByteRing",
            references: vec![
                reference("C ring, cached idx (2 procs)", c_ring::bytes4k, None),
                reference("rtrb [u8; 4096] (2 threads)", threads::rtrb_4k, None),
                reference(
                    "crossbeam [u8; 4096] (2 threads)",
                    threads::crossbeam_4k,
                    None,
                ),
            ],
        },
        // ---- Latency (issues 3, 4) ----
        Figure {
            id: "pingpong-spin-spsc",
            group: "latency",
            title: "busy-polling round trip over two separate SPSC rings, 2 processes",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "two SpscRing<u64>, try_push / busy-polling try_pop",
                run: shmprim_side::spsc_pingpong,
                goal: None,
                available: always,
            }),
            hook: "SpscRing<u64> x2",
            // No goal: the ping-pong goal is carried by `pingpong-spin-duplex`,
            // the two SPSC rings shmprim builds for request and reply. Two
            // rings in separate segments cannot share a line between the
            // directions, and on the machine of BENCHMARKS.md they meet 1.3x
            // in about two runs of three.
            references: vec![
                reference("raw atomic ping-pong (2 procs)", pingpong::spin, None),
                // No goal: two one-way words, the bare shape of two one-way
                // channels (not a floor: a ring whose consumer fetches its two
                // lines at once can beat it, see BENCHMARKS.md).
                reference(
                    "raw ping-pong, one word each way (2 procs)",
                    pingpong::spin_two_words,
                    None,
                ),
            ],
        },
        Figure {
            id: "pingpong-spin-duplex",
            group: "latency",
            title: "busy-polling round trip over a DuplexRing (two interleaved SPSC rings), 2 processes",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "DuplexRing<u64>, try_send / busy-polling try_recv",
                run: shmprim_side::duplex_pingpong,
                goal: None,
                available: always,
            }),
            hook: "DuplexRing<u64>",
            // The goal: a busy-polling round trip over two SPSC rings at most
            // 1.3x a raw atomic ping-pong.
            references: vec![
                reference(
                    "raw atomic ping-pong (2 procs)",
                    pingpong::spin,
                    Some(Goal::RatioAtMost(1.3)),
                ),
                reference(
                    "raw ping-pong, one word each way (2 procs)",
                    pingpong::spin_two_words,
                    None,
                ),
                reference(
                    "iceoryx2 publish-subscribe ping-pong (2 procs)",
                    iceoryx::pingpong,
                    Some(Goal::RatioAtMost(1.0)),
                ),
                reference(
                    "iceoryx2 request-response (2 procs)",
                    iceoryx::request_rtt,
                    None,
                ),
            ],
        },
        Figure {
            id: "pingpong-spin-pipe",
            group: "latency",
            title: "busy-polling round trip over a duplex Pipe, 8-byte messages, 2 processes",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Pipe, try_send / busy-polling try_recv_into",
                run: shmprim_side::pipe_pingpong,
                goal: None,
                available: always,
            }),
            hook: "Pipe",
            // No goal: the issue sets its ping-pong goal on the rings; this
            // row shows what a byte message's record and the pipe's checks
            // add to them.
            references: vec![reference(
                "raw atomic ping-pong (2 procs)",
                pingpong::spin,
                None,
            )],
        },
        Figure {
            id: "pingpong-spin-word",
            group: "latency",
            title: "busy-polling round trip over one word of a shmprim Segment (harness check)",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Segment word, busy-polling",
                run: shmprim_side::spin_pingpong,
                goal: None,
                available: always,
            }),
            hook: "Segment",
            // No goal: the same loop on both sides; this row checks the harness.
            references: vec![reference(
                "raw atomic ping-pong (2 procs)",
                pingpong::spin,
                None,
            )],
        },
        Figure {
            id: "pingpong-wait",
            group: "latency",
            title: "sleeping round trip with shmprim::wait (spin, then futex) over a Segment",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "wait_while_eq + wake over a Segment",
                run: shmprim_side::wait_pingpong,
                goal: None,
                available: always,
            }),
            hook: "wait",
            // No goal: the issues' goals are on the primitives (Event, Queue) built on it.
            references: vec![bare_futex(None)],
        },
        Figure {
            id: "event-rtt",
            group: "latency",
            title: "Event ping-pong wake latency (two Events, set/wait/clear), 2 processes",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "two Events (set / wait / clear)",
                run: shmprim_side::event_rtt,
                goal: None,
                available: always,
            }),
            hook: "Event",
            references: vec![
                bare_futex(Some(Goal::RatioAtMost(1.0))),
                reference("Unix pipe (2 procs)", os_ipc::pipe, None),
                reference(
                    "iceoryx2 event (2 procs)",
                    iceoryx::event_rtt,
                    Some(Goal::RatioAtMost(1.0)),
                ),
            ],
        },
        // ---- MPMC throughput ----
        Figure {
            id: "mpmc-1p1c",
            group: "mpmc",
            title: "MPMC queue throughput, 1 producer, 1 consumer (processes)",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "Queue<u64>, try_put / try_get one at a time, spin + yield",
                run: shmprim_side::mpmc_1,
                goal: None,
                available: always,
            }),
            hook: "MPMC ring / Queue<u64>",
            references: vec![
                reference(
                    "crossbeam ArrayQueue (threads)",
                    threads::crossbeam_mpmc_1,
                    Some(Goal::RatioAtLeast(1.0)),
                ),
                reference("mutex+condvar queue in shm (procs)", pthread::cvq_1, None),
                boost_ref("Boost message_queue (procs)", boost::mq_1, None),
            ],
        },
        Figure {
            id: "mpmc-2p2c",
            group: "mpmc",
            title: "MPMC queue throughput, 2 producers, 2 consumers (processes)",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "Queue<u64>, try_put / try_get one at a time, spin + yield",
                run: shmprim_side::mpmc_2,
                goal: None,
                available: always,
            }),
            hook: "MPMC ring / Queue<u64>",
            references: vec![
                reference(
                    "crossbeam ArrayQueue (threads)",
                    threads::crossbeam_mpmc_2,
                    Some(Goal::RatioAtLeast(1.0)),
                ),
                reference("mutex+condvar queue in shm (procs)", pthread::cvq_2, None),
                boost_ref(
                    "Boost message_queue (procs)",
                    boost::mq_2,
                    Some(Goal::RatioAtLeast(10.0)),
                ),
            ],
        },
        Figure {
            id: "mpmc-2p2c-split",
            group: "mpmc",
            title: "MPMC queue throughput, 2 producers, 2 consumers, one of each pinned to each core",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "Queue<u64>, try_put / try_get one at a time, spin + yield",
                run: shmprim_side::mpmc_2_split,
                goal: None,
                available: always,
            }),
            hook: "MPMC ring / Queue<u64>",
            // No goal of its own: `mpmc-2p2c` with the placement fixed to the
            // one in which the scheduler's choice of `mpmc-2p2c` used to be
            // slowest (BENCHMARKS.md).
            references: vec![reference(
                "crossbeam ArrayQueue (threads, same placement)",
                threads::crossbeam_mpmc_2_split,
                None,
            )],
        },
        Figure {
            id: "mpmc-4p4c",
            group: "mpmc",
            title: "MPMC queue throughput, 4 producers, 4 consumers (processes)",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "Queue<u64>, try_put / try_get one at a time, spin + yield",
                run: shmprim_side::mpmc_4,
                goal: None,
                available: always,
            }),
            hook: "MPMC ring / Queue<u64>",
            references: vec![
                reference(
                    "crossbeam ArrayQueue (threads)",
                    threads::crossbeam_mpmc_4,
                    None,
                ),
                reference("mutex+condvar queue in shm (procs)", pthread::cvq_4, None),
                boost_ref("Boost message_queue (procs)", boost::mq_4, None),
            ],
        },
        // ---- Blocking queue round trip ----
        Figure {
            id: "queue-rtt",
            group: "queue",
            title: "blocking queue round trip (put, peer gets and answers), 2 processes",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "two Queue<u64>, blocking put / get",
                run: shmprim_side::queue_rtt,
                goal: None,
                available: always,
            }),
            hook: "Queue<u64>",
            references: vec![
                bare_futex(Some(Goal::RatioAtMost(1.0))),
                reference("Unix pipe (2 procs)", os_ipc::pipe, None),
                reference("Unix socket (2 procs)", os_ipc::socket, None),
                Impl {
                    name: "POSIX message queue (2 procs)",
                    run: os_ipc::mq,
                    goal: None,
                    available: os_ipc::mq_available,
                },
                Impl {
                    name: "Python multiprocessing.Queue",
                    run: python::mp_queue,
                    goal: None,
                    available: python::available,
                },
                boost_ref("Boost message_queue (2 procs)", boost::mq_rtt, None),
            ],
        },
        // ---- Values of any type ----
        object_figure(
            "objq-str16",
            "ObjectQueue<String> of 16-byte strings, 1 producer and 1 consumer process",
            object_side::objq_str16,
            object_side::byteq_16,
            python::mp_queue_str16,
        ),
        object_figure(
            "objq-str1k",
            "ObjectQueue<String> of 1 KiB strings, 1 producer and 1 consumer process",
            object_side::objq_str1k,
            object_side::byteq_1k,
            python::mp_queue_str1k,
        ),
        // ---- Locks and friends ----
        Figure {
            id: "mutex-uncontended",
            group: "lock",
            title: "Mutex lock+unlock, uncontended, in shared memory",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Mutex<u64>",
                run: shmprim_side::mutex_uncontended,
                goal: None,
                available: always,
            }),
            hook: "Mutex<u64>",
            references: vec![
                reference(
                    "pthread robust pshared mutex",
                    pthread::mutex_uncontended,
                    Some(Goal::RatioAtMost(1.1)),
                ),
                reference("raw_sync Mutex", raw_sync_mutex::uncontended, None),
                boost_ref(
                    "Boost interprocess_mutex",
                    boost::mutex_uncontended,
                    Some(Goal::RatioAtMost(1.0)),
                ),
            ],
        },
        Figure {
            id: "mutex-contended",
            group: "lock",
            title: "Mutex lock+unlock, contended by 2 processes (time per pair)",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Mutex<u64>",
                run: shmprim_side::mutex_contended,
                goal: None,
                available: always,
            }),
            hook: "Mutex<u64>",
            references: vec![
                reference(
                    "pthread robust pshared mutex",
                    pthread::mutex_contended,
                    None,
                ),
                reference("raw_sync Mutex", raw_sync_mutex::contended, None),
                boost_ref(
                    "Boost interprocess_mutex (2 procs)",
                    boost::mutex_contended,
                    None,
                ),
            ],
        },
        Figure {
            id: "semaphore-rtt",
            group: "lock",
            title: "Semaphore round trip (release one, acquire the other), 2 processes",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "two Semaphores(0)",
                run: shmprim_side::semaphore_rtt,
                goal: None,
                available: always,
            }),
            hook: "Semaphore",
            references: vec![
                reference("POSIX sem_t pshared (2 procs)", pthread::sem, None),
                bare_futex(None),
                boost_ref("Boost named_semaphore (2 procs)", boost::sem_rtt, None),
            ],
        },
        Figure {
            id: "barrier-round",
            group: "lock",
            title: "Barrier(2) round, one party per process",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Barrier(2)",
                run: shmprim_side::barrier_round,
                goal: None,
                available: always,
            }),
            hook: "Barrier",
            references: vec![reference(
                "pthread_barrier pshared (2 procs)",
                pthread::barrier,
                None,
            )],
        },
        // ---- Value ----
        Figure {
            id: "value-u64-fetch-add",
            group: "value",
            title: "Value<u64> fetch_add, uncontended",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Value<u64>::fetch_add",
                run: shmprim_side::value_fetch_add,
                goal: None,
                available: always,
            }),
            hook: "Value<u64>",
            references: vec![reference(
                "AtomicU64 in a mapping",
                atomics::fetch_add,
                None,
            )],
        },
        Figure {
            id: "value-u64-get",
            group: "value",
            title: "Value<u64> get, uncontended",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Value<u64>::get",
                run: shmprim_side::value_get,
                goal: None,
                available: always,
            }),
            hook: "Value<u64>",
            references: vec![reference("AtomicU64 in a mapping", atomics::load, None)],
        },
        Figure {
            id: "value-64b-get",
            group: "value",
            title: "64-byte Value get while another process keeps setting it",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Value<[u64; 8]>::get",
                run: shmprim_side::value_64b_get,
                goal: None,
                available: always,
            }),
            hook: "Value<[u64; 8]>",
            references: vec![reference(
                "pthread-mutex-protected copy (2 procs)",
                pthread::mutex_copy_get,
                None,
            )],
        },
        // ---- Processes and pools ----
        Figure {
            id: "pool-map-cs1",
            group: "pool",
            title: "Pool.map of u64 identity tasks over 2 workers, chunksize 1",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "Pool::map_chunked(ident, 0..n, 1)",
                run: pool_side::pool_map_cs1,
                goal: None,
                available: always,
            }),
            hook: "Pool",
            references: vec![
                Impl {
                    name: "Python Pool(2).map, chunksize=1",
                    run: python::pool_map_cs1,
                    goal: Some(Goal::RatioAtLeast(100.0)),
                    available: python::available,
                },
                Impl {
                    name: "Python ProcessPoolExecutor(2).map, chunksize=1",
                    run: python::executor_map_cs1,
                    goal: None,
                    available: python::available,
                },
                reference(
                    "thread pool: 2 std threads + crossbeam-channel",
                    pool::thread_pool_cs1,
                    Some(Goal::RatioAtLeast(0.5)),
                ),
                reference(
                    "procspawn Pool(2), one spawn per task",
                    pool::procspawn_pool_cs1,
                    None,
                ),
            ],
        },
        Figure {
            id: "pool-map-default",
            group: "pool",
            title: "Pool.map of u64 identity tasks over 2 workers, Python's default chunksize",
            unit: Unit::Mmsgs,
            shmprim: Some(Impl {
                name: "Pool::map(ident, 0..n)",
                run: pool_side::pool_map_default,
                goal: None,
                available: always,
            }),
            hook: "Pool",
            references: vec![Impl {
                name: "Python Pool(2).map, default chunksize",
                run: python::pool_map_default,
                goal: Some(Goal::RatioAtLeast(1.0)),
                available: python::available,
            }],
        },
        Figure {
            id: "pool-worker-death",
            group: "pool",
            title: "a running task's worker SIGKILLed: until its result is WorkerDied",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Pool(1).apply_async, kill, get",
                run: pool_side::worker_death,
                goal: None,
                available: always,
            }),
            hook: "Pool",
            // The goal is absolute (median at most 10 ms, max at most 100
            // ms; BENCHMARKS.md); the kernel's own kill-to-wait is its floor.
            references: vec![reference(
                "Child::kill + wait of a sleeping child",
                pool::kill_to_wait,
                None,
            )],
        },
        Figure {
            id: "process-start-join",
            group: "pool",
            title: "a child process started and joined",
            unit: Unit::Ns,
            shmprim: Some(Impl {
                name: "Process::spawn(noop, ()).join()",
                run: pool_side::process_start_join,
                goal: None,
                available: always,
            }),
            hook: "Process",
            references: vec![
                reference(
                    "Command::new(this executable) --version, status()",
                    pool::command_start_wait,
                    None,
                ),
                Impl {
                    name: "Python Process(target=noop).start(); join() (fork)",
                    run: python::process_start_join,
                    goal: None,
                    available: python::available,
                },
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_ids_are_unique_and_every_figure_has_a_reference() {
        let figs = figures();
        let mut ids: Vec<_> = figs.iter().map(|f| f.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), figs.len());
        assert!(figs.iter().all(|f| !f.references.is_empty()));
    }

    #[test]
    fn goals_point_the_right_way_for_the_unit() {
        for f in figures() {
            for r in &f.references {
                match (r.goal, f.unit.higher_is_better()) {
                    (Some(Goal::RatioAtLeast(_)), false) | (Some(Goal::RatioAtMost(_)), true) => {
                        panic!("{} vs {}: goal points the wrong way", f.id, r.name)
                    }
                    _ => {}
                }
            }
        }
    }
}
