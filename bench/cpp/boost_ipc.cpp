// Boost.Interprocess as the suite's reference: the work of shmprim's rows done
// through `message_queue`, `interprocess_mutex` and `named_semaphore`, behind
// a C interface the Rust runners call. Every call catches Boost's exceptions
// and answers a status: 0 done, -1 an exception, -2 a timeout, -3 a wrong
// value. Every wait is bounded (20 s), so a peer that died ends the run.
#include <cstdint>
#include <new>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/named_semaphore.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>

namespace bi = boost::interprocess;

namespace {

boost::posix_time::ptime deadline() {
    return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::seconds(20);
}

struct MutexState {
    bi::interprocess_mutex mutex;
    uint64_t counter;
};

template <typename F>
int guarded(F f) {
    try {
        return f();
    } catch (...) {
        return -1;
    }
}

}  // namespace

extern "C" {

int bipc_mq_create(const char *name, uint64_t max_msgs) {
    return guarded([&] {
        bi::message_queue::remove(name);
        bi::message_queue mq(bi::create_only, name, max_msgs, sizeof(uint64_t));
        return 0;
    });
}

int bipc_mq_remove(const char *name) { return bi::message_queue::remove(name) ? 0 : -1; }

// Sends base+1 ..= base+n.
int bipc_mq_send_range(const char *name, uint64_t base, uint64_t n) {
    return guarded([&] {
        bi::message_queue mq(bi::open_only, name);
        for (uint64_t i = 1; i <= n; i++) {
            uint64_t v = base + i;
            if (!mq.timed_send(&v, sizeof v, 0, deadline())) return -2;
        }
        return 0;
    });
}

// Receives n values into *sum.
int bipc_mq_recv_sum(const char *name, uint64_t n, uint64_t *sum) {
    return guarded([&] {
        bi::message_queue mq(bi::open_only, name);
        uint64_t s = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = 0;
            bi::message_queue::size_type got = 0;
            unsigned prio = 0;
            if (!mq.timed_receive(&v, sizeof v, got, prio, deadline())) return -2;
            if (got != sizeof v) return -3;
            s += v;
        }
        *sum = s;
        return 0;
    });
}

// Answers each value v received on `ping` with v + 1 on `pong`, n times.
int bipc_mq_echo(const char *ping, const char *pong, uint64_t n) {
    return guarded([&] {
        bi::message_queue in(bi::open_only, ping), out(bi::open_only, pong);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = 0;
            bi::message_queue::size_type got = 0;
            unsigned prio = 0;
            if (!in.timed_receive(&v, sizeof v, got, prio, deadline())) return -2;
            v += 1;
            if (!out.timed_send(&v, sizeof v, 0, deadline())) return -2;
        }
        return 0;
    });
}

// Sends i on `ping` and expects i + 1 on `pong`, for i in 0..n.
int bipc_mq_round_trips(const char *ping, const char *pong, uint64_t n) {
    return guarded([&] {
        bi::message_queue out(bi::open_only, ping), in(bi::open_only, pong);
        for (uint64_t i = 0; i < n; i++) {
            if (!out.timed_send(&i, sizeof i, 0, deadline())) return -2;
            uint64_t v = 0;
            bi::message_queue::size_type got = 0;
            unsigned prio = 0;
            if (!in.timed_receive(&v, sizeof v, got, prio, deadline())) return -2;
            if (v != i + 1) return -3;
        }
        return 0;
    });
}

int bipc_mutex_create(const char *name) {
    return guarded([&] {
        bi::shared_memory_object::remove(name);
        bi::shared_memory_object shm(bi::create_only, name, bi::read_write);
        shm.truncate(sizeof(MutexState));
        bi::mapped_region region(shm, bi::read_write);
        new (region.get_address()) MutexState();
        return 0;
    });
}

int bipc_mutex_remove(const char *name) { return bi::shared_memory_object::remove(name) ? 0 : -1; }

// n times: lock, increment the counter, unlock. *counter: its value after.
int bipc_mutex_loop(const char *name, uint64_t n, uint64_t *counter) {
    return guarded([&] {
        bi::shared_memory_object shm(bi::open_only, name, bi::read_write);
        bi::mapped_region region(shm, bi::read_write);
        MutexState *st = static_cast<MutexState *>(region.get_address());
        for (uint64_t i = 0; i < n; i++) {
            bi::scoped_lock<bi::interprocess_mutex> lock(st->mutex);
            st->counter += 1;
        }
        bi::scoped_lock<bi::interprocess_mutex> lock(st->mutex);
        *counter = st->counter;
        return 0;
    });
}

int bipc_sem_create(const char *name) {
    return guarded([&] {
        bi::named_semaphore::remove(name);
        bi::named_semaphore sem(bi::create_only, name, 0);
        return 0;
    });
}

int bipc_sem_remove(const char *name) { return bi::named_semaphore::remove(name) ? 0 : -1; }

// The initiator posts `ping` and waits on `pong`; the responder waits on
// `ping` and posts `pong`; n times.
int bipc_sem_ping_pong(const char *ping, const char *pong, uint64_t n, int initiator) {
    return guarded([&] {
        bi::named_semaphore a(bi::open_only, ping), b(bi::open_only, pong);
        for (uint64_t i = 0; i < n; i++) {
            if (initiator) {
                a.post();
                if (!b.timed_wait(deadline())) return -2;
            } else {
                if (!a.timed_wait(deadline())) return -2;
                b.post();
            }
        }
        return 0;
    });
}

}  // extern "C"
