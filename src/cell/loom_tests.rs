use super::*;
use loom::sync::Arc;

/// A cell state and a two-word payload on the heap.
struct Model {
    state: CellState,
    words: [AtomicU64; 2],
}

impl Model {
    fn new() -> Arc<Model> {
        Arc::new(Model {
            state: CellState::new(16, 1, 0),
            words: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    fn set(&self, me: u64, v: u64) {
        let side = self.state.claim(me, |_| true).unwrap();
        side.publish(|| {
            for w in &self.words {
                w.store(v, Ordering::Relaxed);
            }
        });
    }

    fn get(&self) -> (u64, u64) {
        self.state
            .read(
                || {
                    (
                        self.words[0].load(Ordering::Relaxed),
                        self.words[1].load(Ordering::Relaxed),
                    )
                },
                |_| true,
            )
            .expect("no writer dies in this model")
    }
}

/// A writer stores {1,1} then {2,2} while a reader reads: the reader never
/// returns a value that was not written (both words equal, and 0, 1 or 2).
#[test]
fn loom_seqlock_reader_never_sees_a_torn_value() {
    loom::model(|| {
        let m = Model::new();
        let m2 = m.clone();
        let writer = loom::thread::spawn(move || {
            m2.set(1, 1);
            m2.set(1, 2);
        });
        let (a, b) = m.get();
        assert_eq!(a, b, "torn read");
        assert!(a <= 2, "value {a} was never written");
        writer.join().unwrap();
        assert_eq!(m.get(), (2, 2));
    });
}

/// A writer (id 7) dies with `seq` odd and half a value stored. A reader
/// never spins forever and never returns the torn value: it either gives up
/// with `WriterDied` or, after a repairing writer (id 8) took the dead
/// claim over and stored a whole value, returns that value.
#[test]
fn loom_dead_writer_is_detected_and_repaired() {
    loom::model(|| {
        let m = Model::new();
        let dead = m.state.claim(7, |_| true).unwrap();
        m.state.seq.store(1, Ordering::Relaxed);
        m.words[0].store(5, Ordering::Relaxed);
        std::mem::forget(dead);
        let m2 = m.clone();
        let reader = loom::thread::spawn(move || {
            m2.state.read(
                || {
                    (
                        m2.words[0].load(Ordering::Relaxed),
                        m2.words[1].load(Ordering::Relaxed),
                    )
                },
                |id| id != 7,
            )
        });
        let side = m.state.claim(8, |id| id != 7).unwrap();
        assert!(side.torn());
        side.publish(|| {
            for w in &m.words {
                w.store(6, Ordering::Relaxed);
            }
        });
        drop(side);
        match reader.join().unwrap() {
            Ok(v) => assert_eq!(v, (6, 6), "a read returned a torn value"),
            Err(ReadError::WriterDied) => {}
            Err(ReadError::Stuck) => panic!("the bound on a held sequence is off under loom"),
        }
        assert_eq!(m.get(), (6, 6));
    });
}

/// Two writers (serialised by the claim) and a reader: the reader sees a
/// whole value some writer wrote, and the last write wins whole.
#[test]
fn loom_two_writers_and_a_reader_never_mix_values() {
    loom::model(|| {
        let m = Model::new();
        let writers: Vec<_> = (1..=2u64)
            .map(|me| {
                let m = m.clone();
                loom::thread::spawn(move || m.set(me, me))
            })
            .collect();
        let (a, b) = m.get();
        assert_eq!(a, b, "torn read");
        assert!(a <= 2);
        for w in writers {
            w.join().unwrap();
        }
        let (a, b) = m.get();
        assert!(a == b && (a == 1 || a == 2), "final value ({a}, {b})");
    });
}

/// Two writers each increment the payload under the write side (as
/// `update` does): the claim serialises them, so no increment is lost.
#[test]
fn loom_claim_serialises_writers() {
    loom::model(|| {
        let m = Model::new();
        let threads: Vec<_> = (1..=2u64)
            .map(|me| {
                let m = m.clone();
                loom::thread::spawn(move || {
                    let side = m.state.claim(me, |_| true).unwrap();
                    let old = m.words[0].load(Ordering::Relaxed);
                    side.publish(|| {
                        for w in &m.words {
                            w.store(old + 1, Ordering::Relaxed);
                        }
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(m.get(), (2, 2));
    });
}
